"""One small training loop on ``accelerate``; recipes (reward, sft, ...) give it examples and a loss.

What it owns: the Accelerator (CPU, GPU, DDP under ``torchrun`` / ``accelerate launch``), a deterministic
batch order from (seed, epoch) with optional length bucketing, gradient accumulation, AdamW with
warmup + cosine/linear/constant schedule, checkpoints in ``RUN/checkpoints/step-N/`` (safetensors through
``accelerator.save_state``), resume that skips consumed batches so a resumed run ends where an
uninterrupted one does, ``RUN/metrics.jsonl`` with one line per optimizer step, and a tqdm bar.

Metrics stay on the device as tensors and reach the CPU (and the other ranks) once every ``log_every``
steps, so a step costs no host sync beyond what the model itself needs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewardgauge.errors import InputError
from rewardgauge.io import (
    normalise_file_modes,
    read_jsonl,
    write_json_atomic,
    write_jsonl_atomic,
    write_text_atomic,
)
from rewardgauge.modeling.loading import quiet_transformers
from rewardgauge.train.config import LoopConfig

CHECKPOINTS = "checkpoints"
METRICS = "metrics.jsonl"
LOOP_STATE = "loop_state.json"


# A loss function takes (model, batch) and returns the loss and a dict of 0-d metric tensors (kept on device).
LossFn = Callable[[torch.nn.Module, Any], tuple[torch.Tensor, dict[str, torch.Tensor]]]


@dataclass
class LoopState:
    """What callbacks see after each optimizer step."""

    step: int
    total_steps: int
    epoch: int
    model: torch.nn.Module
    accelerator: Any


@dataclass
class LoopResult:
    model: torch.nn.Module  # unwrapped (no DDP wrapper)
    steps: int  # optimizer steps done in total, including those before a resume
    examples: int  # examples this call trained on (all processes)
    seconds: float  # wall time of this call's training steps
    last_metrics: dict[str, float]


def make_accelerator(cfg: LoopConfig):
    """The Accelerator for ``cfg``. Under ``torchrun`` on a machine without a GPU, DDP runs on CPU (gloo)."""
    from accelerate import Accelerator

    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    cpu = cfg.cpu or (distributed and not torch.cuda.is_available())
    return Accelerator(cpu=cpu, mixed_precision=cfg.mixed_precision)


def batch_plan(lengths: Sequence[int], batch_size: int, seed: int, epoch: int, world: int = 1,
               rank: int = 0, bucket: bool = True) -> list[list[int]]:
    """This rank's micro-batches (example indices) for one epoch; the same (seed, epoch) gives the same plan.

    A global batch holds ``batch_size * world`` examples, split into equal per-rank slices. The permutation is
    padded by wrapping around so every rank gets the same number of batches (as DistributedSampler does).
    With ``bucket``, chunks of 64 global batches are sorted by length before being cut, and the batches are
    shuffled again, so padding shrinks while the order stays random.
    """
    n = len(lengths)
    if n == 0:
        return []
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n)
    if n % world:
        order = np.concatenate([order, order[: world - n % world]])
    global_bs = batch_size * world
    if bucket:
        lens = np.asarray(lengths)
        chunk = global_bs * 64
        chunks = np.array_split(order, range(chunk, len(order), chunk))
        order = np.concatenate([c[np.argsort(lens[c], kind="stable")] for c in chunks])
    batches = [order[i:i + global_bs] for i in range(0, len(order), global_bs)]
    if bucket:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    per_rank = []
    for b in batches:
        k = len(b) // world
        per_rank.append(b[rank * k:(rank + 1) * k].tolist())
    return per_rank


def lr_lambda(schedule: str, warmup: int, total: int) -> Callable[[int], float]:
    """Multiplier of the peak learning rate at step s: linear warm-up, then cosine / linear decay to 0."""
    def f(s: int) -> float:
        if s < warmup:
            return (s + 1) / (warmup + 1)
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (s - warmup) / max(1, total - warmup))
        return 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else 1.0 - progress
    return f


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW; decay only matrices (norm gains and biases are not decayed), fused where torch supports it."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    try:
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, TypeError):  # a device or dtype without the fused kernel
        return torch.optim.AdamW(groups, lr=lr)


def _checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (``step-N`` folders with their loop state), oldest first."""
    found = []
    for p in (run_dir / CHECKPOINTS).glob("step-*"):
        n = p.name.split("-", 1)[1]
        if n.isdigit() and (p / LOOP_STATE).is_file():
            found.append((int(n), p))
    return sorted(found)


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The most recent complete checkpoint, or None."""
    found = _checkpoints(Path(run_dir))
    return found[-1][1] if found else None


def _save_checkpoint(acc, run_dir: Path, step: int, keep: int) -> None:
    root = run_dir / CHECKPOINTS
    tmp, final = root / f".step-{step}.tmp", root / f"step-{step}"
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    acc.wait_for_everyone()
    # Tied embeddings are stored once; accelerate warns about it on every save, which is expected here.
    quiet = logging.getLogger("accelerate.utils.other")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        acc.save_state(str(tmp), safe_serialization=True)  # every rank writes its own RNG state
    finally:
        quiet.setLevel(level)
    acc.wait_for_everyone()
    if acc.is_main_process:
        write_json_atomic(tmp / LOOP_STATE, {"step": step})
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)  # a checkpoint exists complete or not at all
        for _, p in _checkpoints(run_dir)[:-keep]:
            shutil.rmtree(p, ignore_errors=True)
    acc.wait_for_everyone()


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines past ``step``: a resumed run writes them again."""
    if path.is_file():
        write_jsonl_atomic(path, (row for row in read_jsonl(path) if row.get("step", 0) <= step))


class _Metrics:
    """Per-step metric tensors, buffered; ``flush`` syncs them once (mean over ranks) and writes the lines."""

    def __init__(self, acc, path: Path, bar):
        self.acc, self.path, self.bar = acc, path, bar
        self.rows: list[tuple[dict[str, Any], dict[str, torch.Tensor]]] = []
        self.last: dict[str, float] = {}

    def add(self, info: dict[str, Any], values: dict[str, torch.Tensor]) -> None:
        self.rows.append((info, values))

    def flush(self) -> None:
        if not self.rows:
            return
        keys = sorted(self.rows[0][1])
        if keys:
            table = torch.stack([torch.stack([v[k].detach().float().reshape(()) for k in keys]) for _, v in self.rows])
            if self.acc.num_processes > 1:
                table = self.acc.reduce(table, reduction="mean")
            values = table.cpu().tolist()
        else:
            values = [[] for _ in self.rows]
        lines = [{**info, **{k: round(x, 6) for k, x in zip(keys, vals)}} for (info, _), vals in zip(self.rows, values)]
        self.rows.clear()
        self.last = lines[-1]
        if self.acc.is_main_process:
            with open(self.path, "a", encoding="utf-8") as f:
                for line in lines:
                    f.write(json.dumps(line, sort_keys=True) + "\n")
                f.flush()
            self.bar.set_postfix({k: f"{self.last[k]:.4g}" for k in keys[:4]}, refresh=False)


def fit(acc, model: torch.nn.Module, examples: Sequence[Any], lengths: Sequence[int],
        collate: Callable[[list[Any]], Any], loss_fn: LossFn, cfg: LoopConfig, run_dir: str | os.PathLike,
        *, callbacks: Sequence[Callable[[LoopState], None]] = (),
        evaluate: Callable[[torch.nn.Module], dict[str, float]] | None = None, eval_every: int = 0,
        desc: str = "train") -> LoopResult:
    """Train ``model`` on ``examples`` with ``loss_fn``; checkpoints and metrics go under ``run_dir``.

    ``collate(list_of_examples)`` builds a batch of CPU tensors (moved to the device here); ``lengths`` drive
    length bucketing. ``evaluate(model)`` (main process only) runs every ``eval_every`` steps and at the end;
    its numbers join that step's metrics line with an ``eval_`` prefix.
    """
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    run_dir = Path(run_dir)
    world, rank = acc.num_processes, acc.process_index
    steps_per_epoch = len(batch_plan(lengths, cfg.batch_size, cfg.seed, 0, world, rank, cfg.bucket)) // cfg.grad_accum
    if steps_per_epoch == 0:
        raise InputError(f"{len(examples)} examples make no full optimizer step with batch_size={cfg.batch_size}, "
                         f"grad_accum={cfg.grad_accum} on {world} process(es)")
    total = cfg.max_steps or cfg.epochs * steps_per_epoch

    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(cfg.schedule, int(cfg.warmup_ratio * total), total))
    model, optimizer = acc.prepare(model, optimizer)
    # The scheduler is stepped by hand once per optimizer step (prepared, it would step once per process).
    acc.register_for_checkpointing(scheduler)

    metrics_path = run_dir / METRICS
    step = 0
    ckpt = latest_checkpoint(run_dir) if cfg.resume else None
    if ckpt is not None:
        acc.load_state(str(ckpt))
        step = json.loads((ckpt / LOOP_STATE).read_text())["step"]
        if acc.is_main_process:
            _truncate_metrics(metrics_path, step)
    else:
        if acc.is_main_process:
            shutil.rmtree(run_dir / CHECKPOINTS, ignore_errors=True)
            metrics_path.unlink(missing_ok=True)
        set_seed(cfg.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    acc.wait_for_everyone()

    bar = tqdm(total=total, initial=step, desc=desc, disable=not (cfg.progress and acc.is_main_process),
               dynamic_ncols=True)
    log = _Metrics(acc, metrics_path, bar)
    if step and metrics_path.is_file():  # resumed: a run with nothing left to train still reports its last step
        log.last = ([row for row in read_jsonl(metrics_path) if row.get("step") == step] or [{}])[-1]
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    plan, plan_epoch = None, -1
    start, seen, first_step = time.perf_counter(), 0, step
    while step < total:
        epoch, offset = divmod(step, steps_per_epoch)
        if epoch != plan_epoch:
            plan, plan_epoch = batch_plan(lengths, cfg.batch_size, cfg.seed, epoch, world, rank, cfg.bucket), epoch
        values: dict[str, torch.Tensor] = {}
        for j in range(cfg.grad_accum):
            idx = plan[offset * cfg.grad_accum + j]
            batch = _to_device(collate([examples[i] for i in idx]), acc.device)
            # Gradients are all-reduced only on the last micro-batch of a step.
            sync = contextlib.nullcontext() if j == cfg.grad_accum - 1 else acc.no_sync(model)
            with sync, acc.autocast():
                loss, m = loss_fn(model, batch)
                acc.backward(loss / cfg.grad_accum if cfg.grad_accum > 1 else loss)
            for k, v in m.items():
                v = v.detach() if cfg.grad_accum == 1 else v.detach() / cfg.grad_accum
                values[k] = values[k] + v if k in values else v
            seen += len(idx) * world
        if cfg.max_grad_norm:
            values["grad_norm"] = acc.clip_grad_norm_(params, cfg.max_grad_norm)
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        bar.update(1)
        log.add({"step": step, "epoch": epoch, "lr": lr, "time": round(time.perf_counter() - start, 4)}, values)

        evaluated = False
        if evaluate is not None and ((eval_every and step % eval_every == 0) or step == total):
            results = evaluate(acc.unwrap_model(model)) if acc.is_main_process else {}
            acc.wait_for_everyone()
            log.rows[-1][0].update({f"eval_{k}": v for k, v in results.items()})
            model.train()
            evaluated = True
        if step % cfg.log_every == 0 or step == total or evaluated:
            log.flush()
        if (cfg.save_every and step % cfg.save_every == 0) or step == total:
            log.flush()
            _save_checkpoint(acc, run_dir, step, cfg.keep_checkpoints)
        for cb in callbacks:
            cb(LoopState(step=step, total_steps=total, epoch=epoch, model=model, accelerator=acc))
    log.flush()
    bar.close()
    return LoopResult(model=acc.unwrap_model(model), steps=step, examples=seen,
                      seconds=time.perf_counter() - start if step > first_step else 0.0, last_metrics=log.last)


def start_run(acc, cfg: LoopConfig, run_dir: str | os.PathLike) -> None:
    """Check that a resumed run has the configuration it started with, then write ``config.yaml`` (resolved).

    Flags that change neither the result nor the data (resume, progress, log_every) may differ.
    """
    import yaml

    from rewardgauge.config import config_to_dict

    path = Path(run_dir) / "config.yaml"
    now = json.loads(json.dumps(config_to_dict(cfg), default=str))  # paths given from Python become strings
    if cfg.resume and path.is_file():
        saved = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for key in sorted(set(now) & set(saved) - {"resume", "progress", "log_every"}):
            if saved[key] != now[key]:
                raise InputError(f"differs from the run being resumed ({saved[key]!r} there, {now[key]!r} now)",
                                 path=path, field=key)
    acc.wait_for_everyone()  # every rank has checked before the file changes
    if acc.is_main_process:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, yaml.safe_dump(now, sort_keys=False))


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def save_model(model, tokenizer, out: str | os.PathLike, extra: dict[str, dict] | None = None) -> None:
    """The final model into ``out`` beside the run's other files: save_pretrained (safetensors) into a temp
    folder, each file renamed into place, then the ``extra`` JSON files last (their presence marks it complete).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in extra or {}:
        (out / name).unlink(missing_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".model.", suffix=".tmp", dir=out))
    try:
        with quiet_transformers():
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
        normalise_file_modes(tmp)  # safetensors writes 0600; the model is as readable as the run's other files
        for path in tmp.iterdir():
            os.replace(path, out / path.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for name, obj in (extra or {}).items():
        write_json_atomic(out / name, obj)
