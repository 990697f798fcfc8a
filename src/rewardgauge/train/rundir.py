"""The run directory: one folder per training run, and the parts of it every recipe shares.

    OUT/config.yaml            the resolved config; ``--resume`` refuses a run whose settings differ
    OUT/metrics.jsonl          one line per optimizer step
    OUT/alarms.jsonl, ...      other per-step logs a recipe opens with ``run.log(name)`` (samples.jsonl...)
    OUT/checkpoints/step-N/    accelerate ``save_state`` (safetensors, every rank's RNG) and loop_state.json,
                               renamed into place once complete; the last ``keep_checkpoints`` are kept
    OUT/tensorboard/           event files with ``--report-to tensorboard`` (trackers start with the first
                               metrics written, and are imported only when chosen)

Every per-step log is cleared by a new run and cut back to the checkpoint by a resumed one, so the files
always describe the weights in the folder; a resumed run then writes the same lines an uninterrupted one
would.

How a recipe uses it, top to bottom (``train.loop.fit`` does steps 3 to 7 for the recipes built on it):

    acc = make_accelerator(cfg)                     # cfg extends RunConfig (resume, save_every, report_to...)
    run = RunDir(cfg.out, cfg, acc, inputs={"model": cfg.model, "data": cfg.data})
        # 1. checks only, nothing is written: OUT can be written as a folder and is not inside an input
        #    folder, on --resume the saved config.yaml matches cfg, the chosen tracker is installed
    ...load and check the data, tokenizer and model; bad input raises InputError and OUT stays untouched...
    run.begin()                                     # 2. OUT is written from here on (config.yaml, trackers)
    model, opt = acc.prepare(model, opt); acc.register_for_checkpointing(scheduler)
    step, state = run.checkpoints.restore()         # 3. (0, {}) for a new run
    try:
        while step < total:
            ...one optimizer step...; step += 1
            run.metrics.add({"step": step, "lr": lr}, {"loss": loss.detach()})   # 4. tensors stay on device
            row = run.metrics.flush() if callbacks or step % cfg.log_every == 0 else None  # 5. one sync
            control = notify(callbacks, StepState(step, total, epoch, row, model, acc))  # 6. stop/save_now
            if control.save_now or control.stop or step % cfg.save_every == 0:
                run.metrics.flush(); run.checkpoints.save(step, {"episode": ...})        # 7. extra state
            if control.stop:
                break
    except BaseException:
        run.end(flush=False)                        # close the trackers; buffered steps are past the checkpoint
        raise
    run.end()                                       # flush what is buffered, close the trackers
    run.log("alarms.jsonl").append([{"step": step, ...}])   # other per-step logs, any time after begin()

A non-finite ``loss`` or ``grad_norm`` reaching ``metrics.flush()`` raises ``NonFiniteError`` (an InputError:
one line naming the step, exit 2) before the line is written; since every checkpoint is preceded by a
flush, no checkpoint holds weights trained past that step (``fit`` also checks the weights themselves before
each checkpoint, with ``run.nonfinite(step, "the weights are no longer finite")``). Callbacks run on every
process with the same (reduced) metrics, so a stop or a save happens at the same step everywhere.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import logging
import math
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardgauge.config import config_to_dict
from rewardgauge.errors import InputError
from rewardgauge.io import (
    check_not_locked,
    check_output,
    output_lock,
    read_jsonl,
    write_json_atomic,
    write_jsonl_atomic,
    write_text_atomic,
)
from rewardgauge.train.config import RunConfig

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
ALARMS = "alarms.jsonl"
SAMPLES = "samples.jsonl"
CHECKPOINTS = "checkpoints"
TENSORBOARD = "tensorboard"
LOOP_STATE = "loop_state.json"
# Per-step logs a new run clears even before a recipe opens them: stale ones would describe another run.
STEP_LOGS = (METRICS, ALARMS, SAMPLES)
# Metrics that stop the run when they are not finite (a recipe's loss_fn reports its loss as "loss").
WATCHED = ("loss", "grad_norm")
# Each tracker's package, and where to get it.
TRACKER_PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "trackio": ("trackio",), "wandb": ("wandb",)}


@dataclass
class Control:
    """What a callback may ask of the loop after a step: end the run cleanly (a checkpoint is saved at that
    step, so ``--resume`` can continue it) and/or save a checkpoint now. Recipes that can also do so (``rl``):
    ``rollback_to``, go back to the newest checkpoint at or before that step and continue from there (the
    per-step logs but alarms.jsonl are cut back to it), and ``kl_coef_factor``, multiply the KL coefficient."""

    stop: bool = False
    save_now: bool = False
    rollback_to: int | None = None
    kl_coef_factor: float | None = None


@dataclass
class StepState:
    """What callbacks see after each optimizer step."""

    step: int
    total_steps: int
    epoch: int
    metrics: dict[str, Any]  # this step's line of metrics.jsonl (floats; mean over processes)
    model: Any  # as prepared by accelerate (may be DDP-wrapped)
    accelerator: Any
    run: RunDir | None = None  # the run directory: a callback's own per-step log is ``run.log(name)``
    rollouts: Any = None  # what the step produced, recipe-specific (rl: ``train.rl.StepRollouts``)


# A callback returns a Control to ask for something, or None. A callback with ``state_dict`` and
# ``load_state_dict`` (JSON) has its state saved with each checkpoint and restored on resume.
Callback = Callable[[StepState], "Control | None"]


def notify(callbacks: Sequence[Callback], state: StepState) -> Control:
    """Call each callback; the requests of all of them together (the earliest roll back, the largest KL
    factor). Under DDP every process calls them with the same metrics (means over processes), so every
    process stops or saves at the same step."""
    control = Control()
    for cb in callbacks:
        asked = cb(state)
        if asked is not None:
            control.stop |= asked.stop
            control.save_now |= asked.save_now
            if asked.rollback_to is not None:
                control.rollback_to = min(asked.rollback_to, control.rollback_to if control.rollback_to is not None
                                          else asked.rollback_to)
            if asked.kl_coef_factor is not None:
                control.kl_coef_factor = max(asked.kl_coef_factor, control.kl_coef_factor or 0.0)
    return control


def callback_states(callbacks: Sequence[Callback]) -> dict[str, Any]:
    """{index: state} of the callbacks that have one (saved in a checkpoint's loop_state.json)."""
    return {str(i): cb.state_dict() for i, cb in enumerate(callbacks) if hasattr(cb, "state_dict")}


def load_callback_states(callbacks: Sequence[Callback], states: Mapping[str, Any]) -> None:
    for i, cb in enumerate(callbacks):
        if hasattr(cb, "load_state_dict") and str(i) in states:
            cb.load_state_dict(states[str(i)])


class NonFiniteError(InputError):
    """A watched metric (loss, gradient norm) or the weights became nan/inf: the run stops there."""


class JsonlLog:
    """An append-only JSONL file of rows that carry a ``step``, written by the main process only."""

    def __init__(self, path: Path, write: bool):
        self.path, self.write = path, write
        self.prepared = False  # cleared or cut back by RunDir.begin()

    def append(self, rows: Iterable[dict]) -> None:
        """Add rows (flushed at once: the file survives a crash up to its last complete line); nan and inf,
        which JSON cannot hold, are written as null."""
        if not self.write:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(_json_safe(row), sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n")
            f.flush()

    def cut(self, step: int) -> None:
        """Keep the rows up to ``step`` (those a resumed run does not write again)."""
        if self.write and self.path.is_file():
            write_jsonl_atomic(self.path, (row for row in read_jsonl(self.path) if row.get("step", 0) <= step))

    def clear(self) -> None:
        if self.write:
            self.path.unlink(missing_ok=True)


@contextlib.contextmanager
def _quiet_save_warnings() -> Iterator[None]:
    """Tied embeddings are stored once; accelerate warns about it on every save, which is expected here."""
    logger = logging.getLogger("accelerate.utils.other")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


class Checkpointer:
    """``OUT/checkpoints/step-N``: accelerate ``save_state`` (model, optimizer, registered objects such as the
    scheduler, every rank's RNG; safetensors) plus ``loop_state.json`` ({"step": N, ...the recipe's state}).

    A checkpoint is built under a temporary name and renamed when complete, so it exists whole or not at all;
    only folders with their loop_state.json count, and the newest ``keep`` are kept.
    """

    def __init__(self, acc, root: Path, keep: int):
        self.acc, self.root, self.keep = acc, root, keep
        self.resume_from: tuple[int, Path] | None = None  # set by RunDir.begin()

    def all(self) -> list[tuple[int, Path]]:
        """Complete checkpoints, oldest first."""
        found = []
        for p in self.root.glob("step-*"):
            n = p.name.split("-", 1)[1]
            if n.isdigit() and (p / LOOP_STATE).is_file():
                found.append((int(n), p))
        return sorted(found)

    def latest(self) -> tuple[int, Path] | None:
        found = self.all()
        return found[-1] if found else None

    def save(self, step: int, state: Mapping[str, Any] | None = None) -> Path:
        """Save now (every process must call it); ``state``: JSON-safe extras the recipe needs to resume."""
        acc = self.acc
        tmp, final = self.root / f".step-{step}.tmp", self.root / f"step-{step}"
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        with _quiet_save_warnings():
            acc.save_state(str(tmp), safe_serialization=True)  # every rank writes its own RNG state
        acc.wait_for_everyone()
        if acc.is_main_process:
            write_json_atomic(tmp / LOOP_STATE, {**(state or {}), "step": step})
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)  # a checkpoint exists complete or not at all
            for _, p in self.all()[:-self.keep]:
                shutil.rmtree(p, ignore_errors=True)
        acc.wait_for_everyone()
        return final

    def restore(self) -> tuple[int, dict[str, Any]]:
        """Load the checkpoint the run resumes from into the prepared objects: (its step, the recipe's state),
        or (0, {}) for a new run. Call after ``acc.prepare`` and ``acc.register_for_checkpointing``."""
        if self.resume_from is None:
            return 0, {}
        return self.load(*self.resume_from)

    def at_or_before(self, step: int) -> tuple[int, Path] | None:
        """The newest complete checkpoint at or before ``step`` (a roll back's target), or None."""
        found = [c for c in self.all() if c[0] <= step]
        return found[-1] if found else None

    def load(self, step: int, path: Path) -> tuple[int, dict[str, Any]]:
        """Load one checkpoint into the prepared objects: (its step, the recipe's state)."""
        self.acc.load_state(str(path))
        state = json.loads((path / LOOP_STATE).read_text(encoding="utf-8"))
        state.pop("step", None)
        return step, state

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def remove_partial(self) -> None:
        """Temporary folders of a save that a crash interrupted."""
        for p in self.root.glob(".step-*.tmp"):
            shutil.rmtree(p, ignore_errors=True)


def _finite(x: Any) -> bool:
    return not isinstance(x, float) or math.isfinite(x)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value if _finite(value) else None


class MetricsLog:
    """Per-step metrics: 0-d tensors buffered on the device, brought to the CPU once per ``flush`` (mean over
    processes), written as metrics.jsonl lines and sent to the trackers."""

    def __init__(self, run: RunDir):
        self.run = run
        self.rows: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.last: dict[str, Any] = {}

    def add(self, info: dict[str, Any], values: Mapping[str, Any]) -> None:
        """One step: ``info`` plain values (``step`` first of all), ``values`` 0-d tensors (or floats)."""
        self.rows.append((dict(info), dict(values)))

    def update_last(self, info: dict[str, Any]) -> None:
        """Add plain values (e.g. an evaluation's) to the most recent step not flushed yet."""
        self.rows[-1][0].update(info)

    def flush(self) -> dict[str, Any] | None:
        """Write the buffered steps; returns the last one's line (None if nothing was buffered)."""
        import torch

        if not self.rows:
            return None
        acc = self.run.acc
        keys = sorted({k for _, v in self.rows for k in v})
        if keys:
            # Every process buffers the same steps with the same keys; a key a step lacks is NaN, then dropped.
            nan = torch.tensor(float("nan"))
            table = torch.stack([torch.stack([torch.as_tensor(v[k]).detach().float().reshape(()).to(acc.device)
                                              if k in v else nan.to(acc.device) for k in keys])
                                 for _, v in self.rows])
            if acc.num_processes > 1:
                table = acc.reduce(table, reduction="mean")
            values = table.cpu().tolist()
        else:
            values = [[] for _ in self.rows]
        lines = []
        for (info, present), vals in zip(self.rows, values):
            line = {**info, **{k: round(x, 6) for k, x in zip(keys, vals) if k in present}}
            lines.append(line)
        self.rows.clear()
        bad = next(((line, k) for line in lines for k in WATCHED if not _finite(line.get(k))), None)
        if bad is not None:
            line, key = bad
            good = lines[:lines.index(line)]
            self._write(good)
            raise self.run.nonfinite(line.get("step"), f"{key} is {line[key]}")
        # Other non-finite values (a diverging side quantity) are written as null (JSON has no nan).
        lines = [_json_safe(line) for line in lines]
        self._write(lines)
        return self.last

    def _write(self, lines: list[dict[str, Any]]) -> None:
        if not lines:
            return
        self.last = lines[-1]
        self.run.log(METRICS).append(lines)
        for tracker in self.run.start_trackers():
            for line in lines:
                tracker.log({k: v for k, v in line.items() if k != "step" and v is not None}, step=line["step"])


def check_tracker(name: str) -> None:
    """A clear one-line error when the chosen tracker's package is not installed (before anything is written)."""
    if name == "none":
        return
    if not any(importlib.util.find_spec(p) is not None for p in TRACKER_PACKAGES[name]):
        raise InputError(f"--report-to {name} needs the {TRACKER_PACKAGES[name][0]} package, which is not "
                         f"installed: pip install 'rewardgauge[{name}]'", field="report_to")


def _start_tracker(name: str, out: Path, start_step: int, config: dict[str, Any]):
    """An accelerate tracker, started; its package is imported only here, when it was chosen."""
    from accelerate import tracking

    if name == "tensorboard":
        # purge_step hides events a crashed run logged past the checkpoint it resumes from.
        tracker = tracking.TensorBoardTracker(TENSORBOARD, out, **({"purge_step": start_step + 1} if start_step else {}))
    elif name == "wandb":
        tracker = tracking.WandBTracker("rewardgauge", name=out.name, dir=str(out))
    else:
        tracker = tracking.TrackioTracker("rewardgauge", name=out.name)
    tracker.start()
    if name != "tensorboard":  # TensorBoard gets no hparams: config.yaml sits beside its event files
        flat = {k: v if isinstance(v, (int, float, str, bool)) or v is None else json.dumps(v)
                for k, v in config.items()}
        tracker.store_init_configuration(flat)
    return tracker


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


_holders: list[tuple[contextlib.ExitStack, list[Path]]] = []  # the open held_outputs() contexts, innermost last


@contextlib.contextmanager
def held_outputs() -> Iterator[None]:
    """Runs begun inside this context lock their folder (``io.output_lock``, on the main process) from
    ``RunDir.begin`` until the context ends, so the lock covers what a recipe writes after its loop (the final
    model); a second writer of the same folder stops at once, before it loads anything. A command wraps its
    whole run in it; a run inside a locked folder (an ensemble's members) takes no lock of its own."""
    with contextlib.ExitStack() as stack:
        _holders.append((stack, []))
        try:
            yield
        finally:
            _holders.pop()


class RunDir:
    """One run's folder (see the module docstring). Constructing it only checks; ``begin`` writes."""

    def __init__(self, path: str | os.PathLike, cfg: RunConfig, acc=None, *,
                 inputs: Mapping[str, str | os.PathLike | Sequence[str] | None] = ()):
        """``acc``: the run's Accelerator (None for a folder that only holds sub-runs, such as an ensemble's:
        then process 0 of ``torchrun`` writes). ``inputs``: {config field: path(s)} the run reads; OUT must
        not be one of these folders nor lie inside one."""
        self.path, self.cfg, self.acc = Path(path), cfg, acc
        self.is_main = acc.is_main_process if acc is not None else os.environ.get("RANK", "0") == "0"
        self.config = config_to_dict(cfg)
        self.checkpoints = Checkpointer(acc, self.path / CHECKPOINTS, getattr(cfg, "keep_checkpoints", 1))
        self.metrics = MetricsLog(self)
        self.trackers: list[Any] = []
        self.start_step = 0
        self.begun = False
        self._logs: dict[str, JsonlLog] = {}
        self._check(dict(inputs))

    # ---- 1. checks (read-only) ----
    def _check(self, inputs: dict[str, Any]) -> None:
        out = check_output(self.path, "dir")  # a folder that can be written (not a file, not read-only)
        real = out.resolve()
        for name, value in inputs.items():
            for given in ([value] if isinstance(value, (str, os.PathLike)) else list(value or ())):
                folder = Path(given)
                if folder.is_dir() and _inside(real, folder.resolve()):
                    raise InputError(f"the output folder must not be the --{name.replace('_', '-')} folder "
                                     f"({given}) or inside it", path=out, field="out")
        check_tracker(self.cfg.report_to)
        if _holders and self.is_main:
            check_not_locked(out)
        saved_path = out / CONFIG
        if self.cfg.resume and saved_path.is_file():
            self._check_same_config(saved_path)

    def _check_same_config(self, saved_path: Path) -> None:
        import yaml

        try:
            saved = yaml.safe_load(saved_path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError, OSError) as e:
            raise InputError(f"cannot read the config of the run being resumed ({type(e).__name__})",
                             path=saved_path) from None
        if not isinstance(saved, dict):
            raise InputError("not a mapping of config fields", path=saved_path)
        free = {f.name for f in dataclasses.fields(self.cfg) if f.metadata.get("resume_may_differ")}
        for key in sorted(set(self.config) & set(saved) - free):
            if saved[key] != self.config[key]:
                raise InputError(f"differs from the run being resumed ({saved[key]!r} there, "
                                 f"{self.config[key]!r} now)", path=saved_path, field=key)

    # ---- 2. writing ----
    def begin(self) -> None:
        """Create or update OUT: the checkpoint to resume from (``--resume``, if any) decides whether the
        earlier run's logs are cut back to it or the earlier run's state is removed; then config.yaml and the
        trackers. Every process calls it."""
        if self.begun:
            raise RuntimeError("RunDir.begin() called twice")
        if self.acc is not None:
            self.acc.wait_for_everyone()  # every rank has checked the folder before it changes
        latest = self.checkpoints.latest() if self.cfg.resume else None
        self.checkpoints.resume_from = latest
        self.start_step = latest[0] if latest else 0
        if self.is_main:
            self._lock()
            self.path.mkdir(parents=True, exist_ok=True)
            self.checkpoints.remove_partial()
            if latest is None:
                self.checkpoints.clear()
                shutil.rmtree(self.path / TENSORBOARD, ignore_errors=True)
            import yaml

            write_text_atomic(self.path / CONFIG, yaml.safe_dump(self.config, sort_keys=False))
        self.begun = True
        for name in (*STEP_LOGS, *self._logs):
            self._prepare(self.log(name))
        if self.acc is not None:
            self.acc.wait_for_everyone()
        if self.start_step and (self.path / METRICS).is_file():
            # resumed: a run with nothing left to train still reports the metrics of its last step
            rows = [row for row in read_jsonl(self.path / METRICS) if row.get("step") == self.start_step]
            self.metrics.last = rows[-1] if rows else {}

    def _lock(self) -> None:
        """Take the output lock for the open ``held_outputs()`` context, unless a folder around this one is held."""
        if not _holders:
            return
        stack, held = _holders[-1]
        path = self.path.absolute()
        if not any(_inside(path, folder) for _, folders in _holders for folder in folders):
            stack.enter_context(output_lock(path))
            held.append(path)

    def log(self, name: str) -> JsonlLog:
        """The per-step JSONL log ``OUT/name`` (e.g. ``alarms.jsonl``); opened after ``begin`` it starts
        cleared (new run) or cut back to the checkpoint (resumed run)."""
        if name not in self._logs:
            self._logs[name] = JsonlLog(self.path / name, self.is_main)
            if self.begun:
                self._prepare(self._logs[name])
        return self._logs[name]

    def cut_logs(self, step: int, keep: Sequence[str] = (ALARMS,)) -> None:
        """A roll back to ``step``: the per-step logs (but ``keep``) lose the rows after it, as on a resume."""
        for name in (*STEP_LOGS, *self._logs):
            if name not in keep:
                self.log(name).cut(step)

    def _prepare(self, log: JsonlLog) -> None:
        if not log.prepared:
            log.cut(self.start_step) if self.start_step else log.clear()
            log.prepared = True

    def start_trackers(self) -> list[Any]:
        """The chosen tracker, started on the first metrics written (a folder that only holds sub-runs, such
        as an ensemble's, writes none and gets none); main process only."""
        if self.is_main and self.cfg.report_to != "none" and not self.trackers:
            self.trackers.append(_start_tracker(self.cfg.report_to, self.path, self.start_step, self.config))
        return self.trackers

    def nonfinite(self, step: int | None, what: str) -> NonFiniteError:
        """The error that stops a run whose loss or weights stopped being finite at ``step``."""
        latest = self.checkpoints.latest()
        kept = f"its last good checkpoint is {latest[1]}" if latest else "no checkpoint was saved before it"
        return NonFiniteError(f"step {step}: {what}; the run stopped there and {kept} (lower the learning rate, "
                              "or pass --skip-nonfinite to skip such steps)", path=self.path)

    def end(self, flush: bool = True) -> None:
        """Flush buffered metrics (``flush=False`` after an error: they are past the checkpoint a resumed run
        starts from) and close the trackers."""
        try:
            if flush and self.metrics.rows:
                self.metrics.flush()
        finally:
            for tracker in self.trackers:
                tracker.finish()
            self.trackers.clear()
