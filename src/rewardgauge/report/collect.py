"""Find what a run directory holds and read it.

A report of a crashed or half-finished run is still a report: every problem with a file (a cut-off last line,
invalid JSON, an unreadable file) becomes a visible note in the report, never an exception.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MAX_DEPTH = 3  # sub-runs are looked for this many folder levels below the run directory
# Sub-runs are read in pipeline order (data -> policy -> SFT -> RM -> evaluation -> RL); other names follow, by name.
STAGE_ORDER = ("lab", "data", "tokenizer", "policy", "sft", "rm", "reward", "ensemble", "prm", "eval", "audit",
               "dpo", "rl", "ppo", "grpo", "rloo", "monitor")
REPORT_NAMES = ("report.html", "report.md")
SKIP_DIRS = ("checkpoints",)  # many large files and never a sub-run: listed as one entry
ARTIFACTS = ("summary.json", "config.yaml", "metrics.jsonl", "world.json", "alarms.jsonl", "monitor.jsonl",
             "samples.jsonl", "style.jsonl")
SAMPLES_KEPT = 8  # rollouts kept of an RL run's first and of its last step
MAX_JSON_BYTES = 50 * 2**20
MAX_DIR_FILES = 10_000  # counting the files of a listed folder stops here
_BAD_LINES_KEPT = 5


def is_artifact(name: str) -> bool:
    """Files the report renders (everything else is listed by name and size): the fixed names above and the
    evaluations and audits that ``rm eval --out`` and ``audit --out`` write (``eval*.json``, ``audit*.json``)."""
    return name in ARTIFACTS or (name.startswith(("eval", "audit")) and name.endswith(".json"))


@dataclass
class Series:
    """One metric against ``step``, sorted by step, one value per step."""

    steps: list[float]
    values: list[float]


@dataclass
class Metrics:
    """What ``metrics.jsonl`` holds: numeric series to plot, and what was not plotted and why."""

    lines: int = 0  # non-blank lines
    rows: int = 0  # lines that parsed to a JSON object
    series: dict[str, Series] = field(default_factory=dict)  # numeric keys with at least two distinct values
    scalars: dict[str, tuple[float, int]] = field(default_factory=dict)  # constant or single-point: (value, points)
    text_keys: list[str] = field(default_factory=list)  # keys with no numeric value at all
    bad_lines: list[tuple[int, str]] = field(default_factory=list)  # the first few malformed lines: (line, reason)
    n_bad: int = 0
    nonfinite: dict[str, tuple[int, float]] = field(default_factory=dict)  # key -> (count, first step)
    rows_without_step: int = 0


@dataclass
class Folder:
    """What one folder of the run holds: the run directory itself (``rel == "."``) or a sub-run such as ``rm``."""

    rel: str
    path: Path
    summary: dict | None = None
    config: dict | None = None
    config_text: str | None = None  # config.yaml that is not a mapping, shown as text
    metrics: Metrics | None = None
    evals: list[tuple[str, dict]] = field(default_factory=list)  # (file name, contents)
    audits: list[tuple[str, dict]] = field(default_factory=list)
    world: dict | None = None
    alarms: list[dict] | None = None  # alarms.jsonl: the monitor's alarms, one object per line
    monitor: Metrics | None = None  # monitor.jsonl: the monitor's per-step metrics
    style: Metrics | None = None  # style.jsonl: per-step rates of filler sentences, openers... in RL samples
    samples: dict[str, list[dict]] = field(default_factory=dict)  # samples.jsonl: {"first"/"last": rollouts}
    others: list[tuple[str, int, int | None]] = field(default_factory=list)  # (name, bytes, files if a folder)
    notes: list[str] = field(default_factory=list)

    def file(self, name: str) -> str:
        """``name`` as a path relative to the run directory."""
        return name if self.rel == "." else f"{self.rel}/{name}"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _bad_reason(e: ValueError) -> str:
    if isinstance(e, json.JSONDecodeError):
        return f"invalid JSON: {e.msg} (column {e.colno})"
    if isinstance(e, UnicodeDecodeError):
        return f"invalid UTF-8 at byte {e.start}"
    return str(e)


def _dedupe_sorted(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    """Sort by step and keep the last value logged for each step (a resumed run may log a step twice)."""
    if all(a < b for a, b in zip(xs, xs[1:])):
        return xs, ys
    last: dict[float, float] = {}
    for x, y in zip(xs, ys):
        last[x] = y
    steps = sorted(last)
    return steps, [last[s] for s in steps]


def read_metrics(path: str | os.PathLike) -> Metrics:
    """Read ``metrics.jsonl``: one JSON object per step; numeric values (nested dicts flattened as ``a.b``)
    become series against ``step``. Malformed lines are skipped and counted, not fatal."""
    m = Metrics()
    raw: dict[str, tuple[list[float], list[float]]] = {}
    seen_text: set[str] = set()
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            m.lines += 1
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError(f"expected a JSON object, got {type(row).__name__}")
            except ValueError as e:
                m.n_bad += 1
                if len(m.bad_lines) < _BAD_LINES_KEPT:
                    m.bad_lines.append((lineno, _bad_reason(e)))
                continue
            m.rows += 1
            step = row.get("step")
            if _is_number(step) and math.isfinite(step):
                x = step
            else:
                x = m.rows
                m.rows_without_step += 1
            for key, value in row.items():
                if key == "step":
                    continue
                items = ((f"{key}.{k}", v) for k, v in value.items()) if isinstance(value, dict) else ((key, value),)
                for k, v in items:
                    if not _is_number(v):
                        if v is not None:
                            seen_text.add(k)
                        continue
                    if not math.isfinite(v):
                        count, first = m.nonfinite.get(k, (0, x))
                        m.nonfinite[k] = (count + 1, first)
                        continue
                    s = raw.get(k)
                    if s is None:
                        s = raw[k] = ([], [])
                    s[0].append(x)
                    s[1].append(v)
    for key in sorted(raw):
        steps, values = _dedupe_sorted(*raw[key])
        if len(values) >= 2 and min(values) != max(values):
            m.series[key] = Series(steps, values)
        else:
            m.scalars[key] = (values[-1], len(values))
    m.text_keys = sorted(seen_text - set(raw) - set(m.nonfinite))
    return m


def read_samples(path: str | os.PathLike, kept: int = SAMPLES_KEPT) -> tuple[dict[str, list[dict]], int]:
    """The rollouts of an RL run's first and last logged step from samples.jsonl (the first of each group, at
    most ``kept`` of each step), and the number of malformed lines skipped."""
    first: list[dict] = []
    last: list[dict] = []
    first_step = last_step = None
    bad = 0
    with open(path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                bad += 1
                continue
            step = row.get("step") if isinstance(row, dict) else None
            if not _is_number(step) or not isinstance(row.get("response"), str):
                bad += 1
                continue
            if first_step is None:
                first_step = step
            if step != last_step:
                last_step, last = step, []
            # one rollout per group (prompt): the start and the end over several prompts
            if step == first_step and len(first) < kept and all(r.get("group") != row.get("group") for r in first):
                first.append(row)
            if len(last) < kept and all(r.get("group") != row.get("group") for r in last):
                last.append(row)
    out = {"first": first} if first else {}
    if last and last_step != first_step:
        out["last"] = last
    return out, bad


def _read_json_dict(path: Path, notes: list[str]) -> dict | None:
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            notes.append(f"{path.name}: {size} bytes, too large to show")
            return None
        obj = json.loads(path.read_bytes())
    except (OSError, ValueError) as e:
        notes.append(f"{path.name}: not readable: {_bad_reason(e) if isinstance(e, ValueError) else e}")
        return None
    if not isinstance(obj, dict):
        notes.append(f"{path.name}: expected a JSON object, got {type(obj).__name__}")
        return None
    return obj


def _read_rows(path: Path, notes: list[str]) -> list[dict]:
    """The JSON objects of a JSONL file; malformed lines are left out and noted (a crash may cut the last)."""
    rows, bad = [], []
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError(f"expected a JSON object, got {type(row).__name__}")
            except ValueError as e:
                bad.append(f"line {lineno}: {_bad_reason(e)}")
                continue
            rows.append(row)
    if bad:
        notes.append(f"{path.name}: skipped {len(bad)} malformed line(s) ({'; '.join(bad[:_BAD_LINES_KEPT])})")
    return rows


def _read_folder(folder: Folder) -> None:
    d, notes = folder.path, folder.notes
    names = sorted(e.name for e in os.scandir(d) if not e.name.startswith(".") and e.is_file() and is_artifact(e.name))
    for name in names:
        path = d / name
        try:
            if name == "summary.json":
                folder.summary = _read_json_dict(path, notes)
            elif name == "world.json":
                folder.world = _read_json_dict(path, notes)
            elif name.startswith(("eval", "audit")):
                report = _read_json_dict(path, notes)
                if report is not None:
                    (folder.evals if name.startswith("eval") else folder.audits).append((name, report))
            elif name == "config.yaml":
                text = path.read_text(encoding="utf-8")
                try:
                    cfg = yaml.safe_load(text)
                except yaml.YAMLError as e:
                    notes.append(f"config.yaml: invalid YAML: {getattr(e, 'problem', e)}")
                    cfg = None
                if isinstance(cfg, dict):
                    folder.config = cfg
                else:
                    folder.config_text = text[:20_000]
            elif name == "alarms.jsonl":
                folder.alarms = _read_rows(path, notes)
            elif name == "monitor.jsonl":
                folder.monitor = read_metrics(path)
            elif name == "style.jsonl":
                folder.style = read_metrics(path)
            elif name == "samples.jsonl":
                folder.samples, bad = read_samples(path)
                if bad:
                    notes.append(f"samples.jsonl: skipped {bad} malformed line{'s' if bad > 1 else ''}")
            elif name == "metrics.jsonl":
                m = folder.metrics = read_metrics(path)
                if m.n_bad:
                    where = "; ".join(f"line {line}: {why}" for line, why in m.bad_lines)
                    more = f" (and {m.n_bad - len(m.bad_lines)} more)" if m.n_bad > len(m.bad_lines) else ""
                    notes.append(f"metrics.jsonl: skipped {m.n_bad} malformed line{'s' if m.n_bad > 1 else ''} "
                                 f"({where}{more}); a run that crashed may leave its last line cut off")
                for key, (count, first) in m.nonfinite.items():
                    notes.append(f"metrics.jsonl: '{key}' is NaN or infinite on {count} step"
                                 f"{'s' if count > 1 else ''}, first at step {first:g}")
                if m.rows_without_step:
                    notes.append(f"metrics.jsonl: {m.rows_without_step} line(s) without a numeric 'step' are "
                                 "plotted at their row number")
        except (OSError, ValueError) as e:
            notes.append(f"{name}: not readable: {e}")


def _dir_size(path: Path) -> tuple[int, int]:
    """Total bytes and number of files under ``path`` (not following links; stops counting at MAX_DIR_FILES)."""
    size = files = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            try:
                size += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
            files += 1
            if files >= MAX_DIR_FILES:
                return size, files
    return size, files


def _others(d: Path, runs: set[Path], holders: set[Path], exclude: set[Path],
            prefix: str = "") -> list[tuple[str, int, int | None]]:
    """Files that are not rendered: listed with sizes; a folder without sub-runs in it is one entry."""
    out: list[tuple[str, int, int | None]] = []
    try:
        entries = sorted(os.scandir(d), key=lambda e: e.name)
    except OSError:
        return out
    for e in entries:
        if e.name.startswith("."):
            continue
        path = Path(e.path)
        try:
            if e.is_dir(follow_symlinks=False):
                if path in runs:
                    continue
                if path in holders:
                    out += _others(path, runs, holders, exclude, prefix + e.name + "/")
                else:
                    out.append((prefix + e.name + "/", *_dir_size(path)))
            elif not is_artifact(e.name) and e.name not in REPORT_NAMES and path.absolute() not in exclude:
                out.append((prefix + e.name, e.stat(follow_symlinks=False).st_size, None))
        except OSError:
            continue
    return out


def find_run_dirs(root: Path) -> list[Path]:
    """The run directory and every folder up to MAX_DEPTH levels below it that holds a rendered file."""
    found: list[Path] = []

    def walk(d: Path, depth: int) -> None:
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            return
        if depth == 0 or any(is_artifact(e.name) and e.is_file() for e in entries):
            found.append(d)
        if depth < MAX_DEPTH:
            for e in entries:
                if not e.name.startswith(".") and e.name not in SKIP_DIRS and e.is_dir(follow_symlinks=False):
                    walk(Path(e.path), depth + 1)

    walk(root, 0)
    rank = {name: i for i, name in enumerate(STAGE_ORDER)}
    return sorted(found, key=lambda p: [(rank.get(part, len(rank)), part) for part in p.relative_to(root).parts])


def collect_run(root: str | os.PathLike, exclude: tuple[Path, ...] = ()) -> list[Folder]:
    """Every folder of the run directory ``root`` that holds a rendered file, read; ``root`` itself comes
    first, then sub-runs in pipeline order."""
    root = Path(root)
    dirs = find_run_dirs(root)
    dir_set = set(dirs)
    holders = {root / parent for d in dirs for parent in d.relative_to(root).parents}
    excluded = {Path(p).absolute() for p in exclude}
    folders = []
    for d in dirs:
        folder = Folder(rel=d.relative_to(root).as_posix(), path=d)
        _read_folder(folder)
        folder.others = _others(d, dir_set, holders, excluded)
        folders.append(folder)
    return folders
