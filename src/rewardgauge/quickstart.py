"""``rewardgauge quickstart``: the main job on the embedded lab, end to end, into one run directory.

    lab data -> word tokenizer + tiny Llama -> SFT -> reward model -> evaluation by difficulty
    -> counterfactual audit -> GRPO against the reward model with a weak KL -> report.html

The GRPO stage optimises the SFT policy against the reward model (the proxy) and logs the lab's gold reward
of the same samples beside it, so the report shows what the proxy's optimisation does to the true utility,
and whether the policy learns to pad (response length, filler sentences and openers per step).

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
    rl_steps: int = field(default=40, metadata={"help": "GRPO steps against the reward model; 0 = no RL stage"})
    rl_prompts_per_step: int = field(default=8, metadata={"help": "GRPO prompts per step"})
    rl_group_size: int = field(default=8, metadata={"help": "GRPO responses sampled per prompt"})
    rl_lr: float = field(default=1e-4, metadata={"help": "GRPO learning rate"})
    rl_kl_coef: float = field(default=0.01, metadata={"help": "GRPO KL coefficient (k3, in the loss): weak"})
    rl_max_new_tokens: int = field(default=48, metadata={"help": "longest GRPO response"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})

    def validate(self) -> None:
        """Every stage's options, checked before the first stage starts (not minutes later, at its turn)."""
        if not all(math.isfinite(x) for x in (self.sft_lr, self.rm_lr, self.rl_lr, self.rl_kl_coef)):
            raise ValueError(f"learning rates and rl_kl_coef must be finite, got sft_lr={self.sft_lr}, "
                             f"rm_lr={self.rm_lr}, rl_lr={self.rl_lr}, rl_kl_coef={self.rl_kl_coef}")
        if self.rl_steps < 0:
            raise ValueError(f"rl_steps must not be negative, got {self.rl_steps}")
        for stage in stage_configs(self):
            stage.validate()
        if self.rl_steps:
            rl_config(self).validate()


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


def rl_config(cfg: QuickstartConfig):
    """The GRPO stage: the SFT policy against the reward model, k3 KL in the loss, the gold reward logged, and
    every rollout written to samples.jsonl (the style rates are counted from all of a step's samples)."""
    from rewardgauge.train.config import GenerationSection, KLSection, PolicySection, RewardSection, RLConfig

    root = Path(cfg.out)
    per_step = cfg.rl_prompts_per_step * cfg.rl_group_size
    return RLConfig(
        algo="grpo", prompts=str(root / "lab" / "rl_prompts.jsonl"), out=str(root / "rl"), seed=cfg.seed,
        steps=max(1, cfg.rl_steps), prompts_per_step=cfg.rl_prompts_per_step,
        policy=PolicySection(model=str(root / "sft"), lr=cfg.rl_lr),
        generation=GenerationSection(group_size=cfg.rl_group_size, max_new_tokens=cfg.rl_max_new_tokens),
        kl=KLSection(coef=cfg.rl_kl_coef, estimator="k3", placement="loss"),
        reward=RewardSection(models=[str(root / "rm")], gold="lab-gold"),
        samples_per_step=per_step, samples_max=per_step * max(1, cfg.rl_steps),
        save_every=10, log_every=10, resume=True, progress=cfg.progress)


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
    from rewardgauge.rewards.card import write_model_card
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
    write_model_card(rm_dir)  # now with the evaluation and audit figures
    print(format_audit(audit))

    rl_summary: dict = {}
    if cfg.rl_steps:
        rl_dir = _stage(root, "rl", timings, lambda d: run_rl_stage(rl_config(cfg)))
        rl_summary = rl_figures(rl_dir)
        print(format_rl_figures(rl_summary))

    summary = {
        "rm_accuracy": round(report.accuracy, 4),
        **{f"rm_{k}_accuracy": round(v["accuracy"], 4) for k, v in report.by_difficulty.items()},
        "rm_ece": round(report.ece, 4),
        "bars_passed": report.passed,
        **{f"audit_{p.name}_mean_change": round(p.mean_change, 4) for p in audit.probes},
        "audit_passed": audit.passed,
        **rl_summary,
        **{f"seconds_{k}": v for k, v in timings.items()},
    }
    write_json_atomic(root / "summary.json", summary)
    html = build_report(root)
    print(f"[quickstart] report: {html}")
    return summary


def run_rl_stage(rl_cfg) -> None:
    """GRPO, then the share of each step's responses with filler sentences, openers... (``style.jsonl``)."""
    from rewardgauge.lab.style import write_rates_by_step
    from rewardgauge.train.rl import run_rl

    run_rl(rl_cfg)
    write_rates_by_step(rl_cfg.out)


RL_WINDOW = 5  # steps averaged in the RL figures: one step's few prompts are a noisy sample of the prompt mix


def rl_figures(rl_dir: Path, window: int = RL_WINDOW) -> dict:
    """The RL run in a few numbers for summary.json, each a mean over ``window`` consecutive steps (one step's
    prompts are few, so a single step's mean is mostly which prompts it drew): proxy and gold reward over the
    first steps, over the window where gold is highest, and over the last steps; KL, response length and the
    filler and opener rates over the first and the last steps."""
    from rewardgauge.io import read_jsonl
    from rewardgauge.lab.style import STYLE_FILE
    from rewardgauge.train.rundir import METRICS

    rows = read_jsonl(rl_dir / METRICS)
    style = {r["step"]: r for r in read_jsonl(rl_dir / STYLE_FILE)}
    w = max(1, min(window, len(rows)))
    windows = [rows[i:i + w] for i in range(len(rows) - w + 1)]

    def mean(rs: list[dict], key: str, source: dict | None = None) -> float | None:
        values = [(source[r["step"]] if source is not None else r).get(key) for r in rs
                  if source is None or r["step"] in source]
        values = [v for v in values if v is not None]
        return round(sum(values) / len(values), 4) if values else None

    peak = max(windows, key=lambda rs: mean(rs, "gold_mean"))
    out = {"rl_steps": rows[-1]["step"], "rl_window": w,
           "rl_gold_peak_steps": f"{peak[0]['step']}-{peak[-1]['step']}"}
    for name, rs in (("first", windows[0]), ("peak", peak), ("last", windows[-1])):
        out[f"rl_proxy_{name}"] = mean(rs, "reward_mean")
        out[f"rl_gold_{name}"] = mean(rs, "gold_mean")
    for name, rs in (("first", windows[0]), ("last", windows[-1])):
        out[f"rl_kl_{name}"] = mean(rs, "kl_k3")
        out[f"rl_length_{name}"] = mean(rs, "response_length")
        for feature in ("filler", "opener"):
            out[f"rl_{feature}_rate_{name}"] = mean(rs, f"{feature}_rate", style)
    return out


def format_rl_figures(f: dict) -> str:
    w, last = f["rl_window"], f["rl_steps"]
    return "\n".join([
        f"GRPO against the reward model, {last} steps (proxy = the reward model, gold = the lab's utility; "
        f"means over {w} steps: first = steps 1-{w}, last = steps {last - w + 1}-{last}):",
        f"  proxy reward  first {f['rl_proxy_first']:+.3f}  where gold peaks {f['rl_proxy_peak']:+.3f}  "
        f"last {f['rl_proxy_last']:+.3f}",
        f"  gold reward   first {f['rl_gold_first']:+.3f}  peak {f['rl_gold_peak']:+.3f} (steps "
        f"{f['rl_gold_peak_steps']})  last {f['rl_gold_last']:+.3f}",
        f"  KL (k3)       first {f['rl_kl_first']:.3f}  last {f['rl_kl_last']:.3f}",
        f"  length        first {f['rl_length_first']:.1f}  last {f['rl_length_last']:.1f} tokens",
        f"  filler rate   first {_pct(f['rl_filler_rate_first'])}  last {_pct(f['rl_filler_rate_last'])}",
        f"  opener rate   first {_pct(f['rl_opener_rate_first'])}  last {_pct(f['rl_opener_rate_last'])}",
    ])


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quickstart", help="the main job on the lab: data -> SFT -> reward model -> eval -> audit -> GRPO -> report",
        description=__doc__.split("\n\n")[0] + " Stages: lab data, tokenizer + tiny Llama, SFT, reward model, "
                    "evaluation by difficulty, counterfactual audit, GRPO against the reward model with a weak KL "
                    "(gold reward logged beside it), report.html. Re-running resumes.")
    add_config_args(p, QuickstartConfig)
    p.set_defaults(func=lambda args: run_quickstart(config_from_args(QuickstartConfig, args)) and 0)
