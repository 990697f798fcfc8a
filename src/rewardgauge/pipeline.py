"""``rewardgauge run CONFIG.yaml``: a pipeline of stages in one run directory, one sub-folder per stage.

    out: runs/hybrid                      # the run directory
    stages:                               # in order; each maps onto its command's config dataclass
      lab:    {pairs: 2000}               # the stage's kind is its name, or `kind:` (two rm stages: rm_a, rm_b)
      policy: {corpus: ["${lab}/train.jsonl", "${lab}/sft.jsonl"]}
      sft:    {model: "${policy}", data: "${lab}/sft.jsonl"}
      rl:     {prompts: "${lab}/rl_prompts.jsonl", policy: {model: "${sft}"}, reward: {models: ["${rm}"]}}

``${name}`` is the folder of the earlier stage ``name``. Each stage writes to ``OUT/<name>`` (its ``out`` is
set by the runner) and, once it has finished, ``OUT/<name>/stage.json`` (its kind, resolved config and
time): that is what makes a stage complete. Running the pipeline again skips complete stages; a stage that
crashed resumes from its last checkpoint (training stages always run with ``resume``). Every stage's config
is read and checked before the first stage runs: a bad one is one line (file, line, field) and exit 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardgauge.config import config_from_mapping, config_to_dict, read_yaml
from rewardgauge.errors import InputError

STAGE_FILE = "stage.json"
REFERENCE = re.compile(r"\$\{([A-Za-z0-9_-]+)\}")
TOP_LEVEL = ("out", "stages")


@dataclass
class Kind:
    """A kind of stage: its config dataclass, how to run it, and whether it trains (checkpoints, resume)."""

    config: Callable[[], type]
    run: Callable[[Any, Path], None]
    trains: bool = False
    out_file: str | None = None  # stages whose ``out`` is one file in their folder (eval, audit)


def _lab(cfg, folder: Path) -> None:
    from rewardgauge.lab.dataset import generate

    generate(cfg, progress=False)


def _policy(cfg, folder: Path) -> None:
    from rewardgauge.modeling.policy import init_model

    n = init_model(cfg.corpus, cfg.out, cfg.preset, cfg.seed, cfg.min_count, cfg.max_positions)
    print(f"[run] policy: Llama '{cfg.preset}', {n:,} parameters")


def _sft(cfg, folder: Path) -> None:
    from rewardgauge.train.sft import run_sft

    run_sft(cfg)


def _dpo(cfg, folder: Path) -> None:
    from rewardgauge.train.dpo import run_dpo

    run_dpo(cfg)


def _rm(cfg, folder: Path) -> None:
    from rewardgauge.train.ensemble import train_ensemble
    from rewardgauge.train.reward import train_reward_model

    (train_ensemble if cfg.members > 1 else train_reward_model)(cfg)


def _rl(cfg, folder: Path) -> None:
    from rewardgauge.io import iter_jsonl
    from rewardgauge.lab.style import write_rates_by_step
    from rewardgauge.train.rl import run_rl
    from rewardgauge.train.rundir import SAMPLES

    run_rl(cfg)
    first = next(iter_jsonl(cfg.prompts), (0, {}))[1]
    if str(first.get("id", "")).startswith("lab-") and (folder / SAMPLES).is_file():
        # lab prompts: the share of each step's samples with filler sentences, openers... for the report
        write_rates_by_step(folder)


def _eval(cfg, folder: Path) -> None:
    from rewardgauge.rewards.commands import run_eval

    run_eval(cfg)


def _audit(cfg, folder: Path) -> None:
    from rewardgauge.audit.commands import run_audit

    run_audit(cfg)


def _config(module: str, name: str) -> Callable[[], type]:
    def load() -> type:
        import importlib

        return getattr(importlib.import_module(module), name)
    return load


KINDS: dict[str, Kind] = {
    "lab": Kind(_config("rewardgauge.lab.dataset", "LabDataConfig"), _lab),
    "policy": Kind(_config("rewardgauge.modeling.commands", "ModelInitConfig"), _policy),
    "sft": Kind(_config("rewardgauge.train.config", "SFTConfig"), _sft, trains=True),
    "dpo": Kind(_config("rewardgauge.train.config", "DPOConfig"), _dpo, trains=True),
    "rm": Kind(_config("rewardgauge.train.config", "RewardTrainConfig"), _rm, trains=True),
    "rl": Kind(_config("rewardgauge.train.config", "RLConfig"), _rl, trains=True),
    "eval": Kind(_config("rewardgauge.rewards.commands", "RMEvalConfig"), _eval, out_file="eval.json"),
    "audit": Kind(_config("rewardgauge.audit.commands", "AuditConfig"), _audit, out_file="audit.json"),
}


@dataclass
class Stage:
    name: str
    kind: str
    folder: Path
    config: Any

    @property
    def record(self) -> Path:
        return self.folder / STAGE_FILE

    def resolved(self) -> dict:
        """The config as saved in stage.json (progress bars aside: they change nothing)."""
        d = config_to_dict(self.config)
        d.pop("progress", None)
        return d


def _substitute(value: Any, done: dict[str, Path], path: Path, line: int | None, field: str) -> Any:
    """``${name}`` -> the folder of the earlier stage ``name``, in every string of a stage's section."""
    if isinstance(value, dict):
        return {k: _substitute(v, done, path, line, f"{field}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, done, path, line, field) for v in value]
    if not isinstance(value, str):
        return value

    def folder(m: re.Match) -> str:
        if m.group(1) not in done:
            raise InputError(f"${{{m.group(1)}}} names no earlier stage (earlier: {', '.join(done) or 'none'})",
                             path=path, line=line, field=field)
        return str(done[m.group(1)])
    return REFERENCE.sub(folder, value)


def load_pipeline(path: str | Path, out: str | None = None) -> tuple[Path, list[Stage]]:
    """Read and check every stage of the pipeline ``path`` (nothing is written): (run directory, stages)."""
    path = Path(path)
    raw, lines = read_yaml(path)
    if not isinstance(raw, dict):
        raise InputError("expected a mapping with 'out' and 'stages'", path=path)
    unknown = [k for k in raw if k not in TOP_LEVEL]
    if unknown:
        raise InputError(f"unknown key (known: {', '.join(TOP_LEVEL)})", path=path, line=lines.get(str(unknown[0])),
                         field=str(unknown[0]))
    out = out or raw.get("out")
    if not isinstance(out, str) or not out.strip():
        raise InputError("give the run directory: 'out: FOLDER' (or --out)", path=path, line=lines.get("out"),
                         field="out")
    root = Path(out)
    stages_raw = raw.get("stages")
    if not isinstance(stages_raw, dict) or not stages_raw:
        raise InputError("must be a mapping of stage name -> the stage's config, in order", path=path,
                         line=lines.get("stages"), field="stages")
    done: dict[str, Path] = {}
    stages = []
    for name, section in stages_raw.items():
        name = str(name)
        where = f"stages.{name}"
        line = lines.get(where)
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            raise InputError("a stage name is letters, digits, - and _ (it is the stage's folder)", path=path,
                             line=line, field=where)
        section = dict(section or {}) if isinstance(section, dict) or section is None else section
        if not isinstance(section, dict):
            raise InputError("must be a mapping of the stage's config fields", path=path, line=line, field=where)
        kind = str(section.pop("kind", name))
        if kind not in KINDS:
            raise InputError(f"unknown stage kind '{kind}' (kinds: {', '.join(KINDS)}; name the kind with "
                             "'kind:' when the stage's name is not one)", path=path,
                             line=lines.get(f"{where}.kind", line), field=f"{where}.kind")
        for fixed in ("out", "resume"):
            if fixed in section:
                raise InputError(f"set by the runner ({fixed} of a stage: its folder OUT/{name}, always resumed)",
                                 path=path, line=lines.get(f"{where}.{fixed}"), field=f"{where}.{fixed}")
        spec = KINDS[kind]
        folder = root / name
        section = _substitute(section, done, path, line, where)
        overrides: dict[str, Any] = {"out": str(folder / spec.out_file) if spec.out_file else str(folder)}
        if spec.trains:
            overrides["resume"] = True
        try:
            cfg = config_from_mapping(spec.config(), section, path, lines, prefix=f"{where}.", overrides=overrides)
        except InputError as e:
            if e.line is None and e.field is None:  # a check across fields (validate()) or a missing one
                raise InputError(e.message, path=path, line=line, field=where) from None
            raise
        done[name] = folder
        stages.append(Stage(name, kind, folder, cfg))
    return root, stages


def check_records(stages: list[Stage], path: Path) -> None:
    """A stage completed with another config would be skipped although its config changed: stop instead."""
    import json

    for stage in stages:
        if not stage.record.is_file():
            continue
        try:
            saved = json.loads(stage.record.read_text(encoding="utf-8")).get("config")
        except (OSError, ValueError, AttributeError):
            raise InputError("damaged stage record; remove it to run the stage again", path=stage.record) from None
        if saved != stage.resolved():
            changed = sorted(k for k in set(saved or {}) | set(stage.resolved())
                             if (saved or {}).get(k) != stage.resolved().get(k))
            raise InputError(f"stage '{stage.name}' was completed with another config (differs in: "
                             f"{', '.join(changed)}); remove {stage.folder} to run it again, or give the pipeline "
                             "another 'out'", path=path, field=f"stages.{stage.name}")


def run_pipeline(path: str | Path, out: str | None = None, progress: bool = True, report: bool = True) -> dict:
    """Run the pipeline's stages in order, skipping complete ones; returns {stage: seconds or 'skipped'}."""
    from rewardgauge.io import check_output, output_lock, write_json_atomic

    path = Path(path)
    root, stages = load_pipeline(path, out)
    check_records(stages, path)
    root = check_output(root, "dir")
    timings: dict[str, Any] = {}
    with output_lock(root):
        root.mkdir(parents=True, exist_ok=True)
        for stage in stages:
            if stage.record.is_file():
                print(f"[run] {stage.name}: complete, skipped")
                timings[stage.name] = "skipped"
                continue
            print(f"[run] {stage.name} ({stage.kind}) ...", flush=True)
            cfg = stage.config
            if any(f.name == "progress" for f in dataclasses.fields(cfg)):
                cfg = dataclasses.replace(cfg, progress=progress)
            start = time.perf_counter()
            stage.folder.mkdir(parents=True, exist_ok=True)
            KINDS[stage.kind].run(cfg, stage.folder)
            seconds = round(time.perf_counter() - start, 1)
            timings[stage.name] = seconds
            write_json_atomic(stage.record, {"stage": stage.name, "kind": stage.kind, "seconds": seconds,
                                             "config": stage.resolved()})
            print(f"[run] {stage.name}: done in {seconds} s", flush=True)
        if report:
            from rewardgauge.report import build_report

            print(f"[run] report: {build_report(root)}")
    return timings


def _run(args: argparse.Namespace) -> int:
    run_pipeline(args.pipeline, args.out, progress=args.progress, report=args.report)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="run a pipeline of stages (lab, policy, sft, dpo, rm, eval, audit, rl) from one YAML file",
        description=__doc__.split("\n\n")[0] + " Stages complete are skipped, a crashed stage resumes; every "
                    "stage's config is checked before the first runs. Kinds: " + ", ".join(KINDS) + ". A "
                    "stage's section holds the fields of its command's config (see e.g. rewardgauge sft "
                    "--help); ${name} is the folder of the earlier stage name. Ends with report.html.")
    p.add_argument("pipeline", metavar="CONFIG.yaml", help="the pipeline: out, stages (see examples/)")
    p.add_argument("--out", default=None, help="the run directory (default: the file's 'out')")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bars")
    p.add_argument("--report", action=argparse.BooleanOptionalAction, default=True,
                   help="write report.html into the run directory at the end")
    p.set_defaults(func=_run)
