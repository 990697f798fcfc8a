"""``rewardgauge quickstart``: the main job on the embedded lab, end to end, into one run directory.

    lab data -> word tokenizer + tiny Llama -> SFT -> reward model -> evaluation by difficulty
    -> counterfactual audit -> report.html

Every stage writes its own sub-folder and a ``.done`` marker when it finishes; running the command again
skips finished stages and resumes an interrupted training stage from its last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from rewardgauge.config import add_config_args, config_from_args
from rewardgauge.modeling.presets import Preset
from rewardgauge.train.config import Loss


@dataclass
class QuickstartConfig:
    out: str = field(default="runs/quickstart", metadata={"help": "run directory"})
    seed: int = field(default=0, metadata={"help": "seed of the lab data and of every training stage"})
    pairs: int = field(default=20000, metadata={"help": "lab training pairs (annotator votes)"})
    heldout_pairs: int = field(default=2000, metadata={"help": "lab held-out pairs (gold labels)"})
    demos: int = field(default=10000, metadata={"help": "SFT demonstrations"})
    preset: Preset = field(default="tiny", metadata={"help": "policy size: tiny (~0.9M) or small (~3M)"})
    sft_epochs: int = field(default=6, metadata={"help": "SFT passes over the demonstrations"})
    sft_lr: float = field(default=2e-3, metadata={"help": "SFT learning rate"})
    rm_epochs: int = field(default=4, metadata={"help": "reward-model passes over the training pairs"})
    rm_lr: float = field(default=3e-4, metadata={"help": "reward-model learning rate (higher erases what SFT learnt)"})
    rm_loss: Loss = field(default="soft", metadata={"help": "bt, margin, soft (vote fractions) or multi"})
    batch_size: int = field(default=32, metadata={"help": "pairs / demonstrations per step"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})

    def validate(self) -> None:
        """Every stage's options, checked before the first stage starts (not minutes later, at its turn)."""
        if not (math.isfinite(self.sft_lr) and math.isfinite(self.rm_lr)):
            raise ValueError(f"learning rates must be finite, got sft_lr={self.sft_lr}, rm_lr={self.rm_lr}")
        for stage in stage_configs(self):
            stage.validate()


def stage_configs(cfg: QuickstartConfig) -> tuple:
    """The lab-data, SFT and reward-model configs of the stages, folders under ``cfg.out``."""
    from rewardgauge.lab.dataset import LabDataConfig
    from rewardgauge.train.config import RewardTrainConfig, SFTConfig

    root = Path(cfg.out)
    lab = root / "lab"
    return (
        LabDataConfig(out=str(lab), seed=cfg.seed, pairs=cfg.pairs, heldout_pairs=cfg.heldout_pairs,
                      demos=cfg.demos),
        SFTConfig(model=str(root / "policy"), data=str(lab / "sft.jsonl"), out=str(root / "sft"), seed=cfg.seed,
                  epochs=cfg.sft_epochs, batch_size=cfg.batch_size, lr=cfg.sft_lr, save_every=500, resume=True,
                  progress=cfg.progress),
        RewardTrainConfig(model=str(root / "sft"), data=str(lab / "train.jsonl"), out=str(root / "rm"),
                          seed=cfg.seed, epochs=cfg.rm_epochs, batch_size=cfg.batch_size, lr=cfg.rm_lr,
                          loss=cfg.rm_loss, save_every=500, resume=True, progress=cfg.progress),
    )


def _stage(root: Path, name: str, timings: dict[str, float], fn) -> Path:
    folder = root / name
    marker = folder / ".done"
    if marker.exists():
        print(f"[quickstart] {name}: done already, skipped")
        return folder
    print(f"[quickstart] {name} ...", flush=True)
    start = time.perf_counter()
    fn(folder)
    timings[name] = round(time.perf_counter() - start, 1)
    marker.write_text(json.dumps({"seconds": timings[name]}) + "\n")
    return folder


def run_quickstart(cfg: QuickstartConfig) -> dict:
    from rewardgauge.io import check_output, output_lock

    root = check_output(cfg.out, "dir")
    with output_lock(root):  # a second quickstart into the same folder stops at once
        root.mkdir(parents=True, exist_ok=True)
        return _run_stages(cfg, root)


def _run_stages(cfg: QuickstartConfig, root: Path) -> dict:
    from rewardgauge.audit.commands import audit_lab_prompts
    from rewardgauge.audit.counterfactual import format_audit
    from rewardgauge.data.io import load_pairs
    from rewardgauge.io import read_jsonl, write_json_atomic
    from rewardgauge.lab.dataset import generate
    from rewardgauge.modeling.policy import init_model
    from rewardgauge.report import build_report
    from rewardgauge.rewards.evaluation import evaluate, format_report
    from rewardgauge.rewards.loading import load_reward_model
    from rewardgauge.train.reward import train_reward_model
    from rewardgauge.train.sft import run_sft

    timings: dict[str, float] = {}
    lab = root / "lab"

    lab_cfg, sft_cfg, rm_cfg = stage_configs(cfg)
    _stage(root, "lab", timings, lambda d: generate(lab_cfg, progress=cfg.progress))

    def policy(folder: Path) -> None:
        corpus = [lab / "train.jsonl", lab / "sft.jsonl", lab / "heldout.jsonl"]
        n = init_model(corpus, folder, preset=cfg.preset, seed=cfg.seed)
        print(f"[quickstart] policy: Llama '{cfg.preset}', {n:,} parameters")

    _stage(root, "policy", timings, policy)
    _stage(root, "sft", timings, lambda d: run_sft(sft_cfg))
    rm_dir = _stage(root, "rm", timings, lambda d: train_reward_model(rm_cfg))

    rm = load_reward_model(str(rm_dir))
    heldout = load_pairs(lab / "heldout.jsonl")
    report = evaluate(rm, heldout)
    write_json_atomic(rm_dir / "eval.json", {"model": str(rm_dir), "data": str(lab / "heldout.jsonl"),
                                             **report.to_dict()})
    print(format_report(report, "reward model on held-out lab pairs (gold labels)"))

    audit = audit_lab_prompts(rm, [r["prompt"] for r in read_jsonl(lab / "eval_prompts.jsonl")])
    write_json_atomic(rm_dir / "audit.json", {"model": str(rm_dir), **audit.to_dict()})
    print(format_audit(audit))

    summary = {
        "rm_accuracy": round(report.accuracy, 4),
        **{f"rm_{k}_accuracy": round(v["accuracy"], 4) for k, v in report.by_difficulty.items()},
        "rm_ece": round(report.ece, 4),
        "bars_passed": report.passed,
        **{f"audit_{p.name}_mean_change": round(p.mean_change, 4) for p in audit.probes},
        "audit_passed": audit.passed,
        **{f"seconds_{k}": v for k, v in timings.items()},
    }
    write_json_atomic(root / "summary.json", summary)
    html = build_report(root)
    print(f"[quickstart] report: {html}")
    return summary


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quickstart", help="the main job on the lab: data -> SFT -> reward model -> eval -> audit -> report",
        description=__doc__.split("\n\n")[0] + " Stages: lab data, tokenizer + tiny Llama, SFT, reward model, "
                    "evaluation by difficulty, counterfactual audit, report.html. Re-running resumes.")
    add_config_args(p, QuickstartConfig)
    p.set_defaults(func=lambda args: run_quickstart(config_from_args(QuickstartConfig, args)) and 0)
