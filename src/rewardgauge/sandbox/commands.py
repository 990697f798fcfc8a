"""``rewardgauge tasks eval|prompts`` and ``rewardgauge sandbox probe|run``."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Literal

from rewardgauge.cli import group
from rewardgauge.config import add_config_args, config_from_args
from rewardgauge.errors import InputError
from rewardgauge.sandbox.core import Backend
from rewardgauge.sandbox.tasks import TaskFormat

BackendChoice = Literal["auto", Backend]  # auto: the strongest that works here


@dataclass
class TasksEvalConfig:
    tasks: str = field(metadata={"help": "JSONL tasks with hidden tests: MBPP (text, code, test_list), "
                                         "HumanEval (prompt, test, entry_point) or native (task_id, prompt, "
                                         "entry_point, tests)"})
    completions: str = field(metadata={
        "help": "JSONL, one sample per line: {task_id, completion} (continues the task's prompt: a function "
                "body for HumanEval and MBPP) or {task_id, solution} (a full program); n lines per task = n "
                "samples"})
    k: list[int] = field(default_factory=lambda: [1, 10], metadata={
        "help": "pass@k to report, comma-separated (also -k); a k above some task's sample count is skipped"})
    out: str | None = field(default=None, metadata={
        "help": "per-task results JSONL (default: COMPLETIONS with .results.jsonl)"})
    format: TaskFormat = field(default="auto", metadata={"help": "task file format (auto: from the fields)"})
    workers: int = field(default=0, metadata={"help": "parallel executions (0: one per CPU)"})
    timeout: float = field(default=10.0, metadata={"help": "wall-clock seconds per execution"})
    memory_mb: int = field(default=512, metadata={"help": "address-space limit per execution, MiB"})
    backend: BackendChoice = field(default="auto", metadata={"help": "sandbox backend (auto: the strongest that works)"})
    allow_unsafe: bool = field(default=False, metadata={
        "help": "allow the weak rlimits-only backend when running as root"})
    allow_incomplete: bool = field(default=False, metadata={
        "help": "evaluate only the tasks that have completions instead of failing on missing ones"})
    extract_code: bool = field(default=True, metadata={
        "help": "take the code out of a ```python fenced block when a completion has one"})

    def validate(self) -> None:
        if not self.k or any(k < 1 for k in self.k):
            raise ValueError(f"k must be positive integers, got {self.k}")
        if self.workers < 0:
            raise ValueError(f"workers must not be negative, got {self.workers}")
        check_limits(self.timeout, self.memory_mb)


@dataclass
class TasksPromptsConfig:
    tasks: str = field(metadata={"help": "JSONL tasks file (any supported format)"})
    out: str = field(metadata={"help": "JSONL to write: {task_id, prompt, entry_point} per task, no tests"})
    format: TaskFormat = field(default="auto", metadata={"help": "task file format (auto: from the fields)"})


@dataclass
class SandboxProbeConfig:
    python: str | None = field(default=None, metadata={
        "help": "interpreter to run inside (default: /usr/bin/python3)"})
    allow_unsafe: bool = field(default=False, metadata={"help": "consider the rlimits-only backend as root"})


@dataclass
class SandboxRunConfig:
    file: str = field(metadata={"help": "Python file to run in the sandbox"})
    timeout: float = field(default=10.0, metadata={"help": "wall-clock seconds"})
    memory_mb: int = field(default=512, metadata={"help": "address-space limit, MiB"})
    backend: BackendChoice = field(default="auto", metadata={"help": "sandbox backend (auto: the strongest that works)"})
    allow_unsafe: bool = field(default=False, metadata={"help": "allow the rlimits-only backend as root"})
    json: bool = field(default=False, metadata={"help": "print the whole result as one JSON line instead"})

    def validate(self) -> None:
        check_limits(self.timeout, self.memory_mb)


def check_limits(timeout: float, memory_mb: int) -> None:
    """Per-execution limits: a finite positive number of seconds, a positive number of MiB."""
    if not 0 < timeout < math.inf:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout}")
    if memory_mb < 1:
        raise ValueError(f"memory_mb must be at least 1, got {memory_mb}")


def register(sub: argparse._SubParsersAction) -> None:
    tasks = group(sub, "tasks", "tasks with hidden tests: evaluate completions by sandboxed execution (pass@k)")
    p = tasks.add_parser(
        "eval", help="run completions against hidden tests in the sandbox and report pass@k",
        description="Run every completion against its task's hidden tests in the sandbox, on a pool of workers. "
                    "A sample passes when the program exits 0, the trusted runner finishes, and every test "
                    "passes; values of `assert expr == literal` tests are compared outside the sandbox. "
                    "Writes one JSONL row per task (n, c, pass@k, every sample's outcome) and prints a summary "
                    "with the unbiased pass@k estimator (Chen et al. 2021).")
    add_config_args(p, TasksEvalConfig)
    p.add_argument("-k", dest="k", default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=_tasks_eval)
    p = tasks.add_parser(
        "prompts", help="write what the policy may see of each task (no hidden tests)",
        description="Write {task_id, prompt, entry_point} per task: the input for generating completions.")
    add_config_args(p, TasksPromptsConfig)
    p.set_defaults(func=_tasks_prompts)

    sandbox = group(sub, "sandbox", "isolated execution of untrusted Python")
    p = sandbox.add_parser(
        "probe", help="show which sandbox backends work here and which one is used",
        description="Run a tiny program under each backend (bwrap, landlock, rlimits) and report which work "
                    "and why the others do not. Exits 1 when none works.")
    add_config_args(p, SandboxProbeConfig)
    p.set_defaults(func=_sandbox_probe)
    p = sandbox.add_parser(
        "run", help="run a Python file in the sandbox",
        description="Run FILE in the sandbox; its stdout and stderr are passed through (capped) and a status "
                    "line goes to stderr. Exits 0 when the program exited 0, else 1.")
    add_config_args(p, SandboxRunConfig, positional=("file",))
    p.set_defaults(func=_sandbox_run)


def _tasks_eval(args: argparse.Namespace) -> int:
    from rewardgauge.io import check_output, write_jsonl_atomic
    from rewardgauge.sandbox.evaluate import evaluate, format_summary
    from rewardgauge.sandbox.tasks import load_completions, load_tasks

    cfg = config_from_args(TasksEvalConfig, args)
    out = check_output(cfg.out or _results_path(cfg.completions), "file")
    tasks = {t.task_id: t for t in load_tasks(cfg.tasks, cfg.format)}
    jobs = load_completions(cfg.completions, tasks, extract=cfg.extract_code)
    missing = sorted(set(tasks) - {task.task_id for task, _ in jobs})
    if missing and not cfg.allow_incomplete:
        raise InputError(f"{len(missing)} of {len(tasks)} tasks have no completions (first: {missing[0]!r}); "
                         "pass --allow-incomplete to evaluate only the others", path=cfg.completions)
    sandbox = _sandbox(cfg.timeout, cfg.memory_mb, cfg.backend, cfg.allow_unsafe)
    rows, summary = evaluate(sandbox, jobs, cfg.k, workers=cfg.workers or None)
    write_jsonl_atomic(out, rows)
    print(format_summary(summary))
    print(f"per-task results: {out}")
    return 0


def _results_path(completions: str) -> str:
    stem = completions[:-len(".jsonl")] if completions.endswith(".jsonl") else completions
    return stem + ".results.jsonl"


def _sandbox(timeout: float, memory_mb: int, backend: str, allow_unsafe: bool):
    from rewardgauge.sandbox.core import Limits, Sandbox

    try:
        return Sandbox(limits=Limits(timeout_s=timeout, memory_mb=memory_mb), backend=backend,
                       allow_unsafe=allow_unsafe)
    except RuntimeError as e:
        raise InputError(str(e), field="backend") from None


def _tasks_prompts(args: argparse.Namespace) -> int:
    from rewardgauge.io import check_output, write_jsonl_atomic
    from rewardgauge.sandbox.tasks import load_tasks

    cfg = config_from_args(TasksPromptsConfig, args)
    check_output(cfg.out, "file")
    n = write_jsonl_atomic(cfg.out, (t.public() for t in load_tasks(cfg.tasks, cfg.format)))
    print(f"wrote {n} prompts to {cfg.out}")
    return 0


def _sandbox_probe(args: argparse.Namespace) -> int:
    from rewardgauge.sandbox.core import default_python, probe_backends

    cfg = config_from_args(SandboxProbeConfig, args)
    if cfg.python is not None and not (os.path.isfile(cfg.python) and os.access(cfg.python, os.X_OK)):
        raise InputError("no such interpreter (not an executable file)", path=cfg.python, field="python")
    python = cfg.python or default_python()
    probes = probe_backends(python, allow_unsafe=cfg.allow_unsafe)
    chosen = next((p.backend for p in probes if p.ok), None)
    print(f"interpreter inside: {python}")
    for p in probes:
        mark = "*" if p.backend == chosen else " "
        detail = "+".join(p.layers) if p.ok else p.reason
        print(f"{mark} {p.backend:<9} {'ok' if p.ok else 'no':<3} {detail}")
    print(f"chosen: {chosen}" if chosen else "no backend works here")
    return 0 if chosen else 1


def _sandbox_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    cfg = config_from_args(SandboxRunConfig, args)
    path = Path(cfg.file)
    if not path.is_file():
        raise InputError("is a folder, not a Python file" if path.is_dir() else "file not found", path=path)
    sandbox = _sandbox(cfg.timeout, cfg.memory_mb, cfg.backend, cfg.allow_unsafe)
    res = sandbox.run(path.read_text(encoding="utf-8", errors="surrogateescape"))
    if cfg.json:
        print(json.dumps(res.to_dict()))
    else:
        sys.stdout.write(res.stdout)
        sys.stderr.write(res.stderr)
        print(f"rewardgauge sandbox: status={res.status} exit_code={res.exit_code} signal={res.signal} "
              f"backend={'+'.join(res.layers)} duration={res.duration_s:.3f}s", file=sys.stderr)
    return 0 if res.ok else 1
