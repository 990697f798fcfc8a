"""One small training loop on ``accelerate``; recipes (reward, sft, ...) give it examples and a loss.

What it owns: the Accelerator (CPU, GPU, DDP under ``torchrun`` / ``accelerate launch``), a deterministic
batch order from (seed, epoch) with optional length bucketing, gradient accumulation, AdamW with
warmup + cosine/linear/constant schedule, resume that skips consumed batches so a resumed run ends where an
uninterrupted one does, a stop at the first non-finite loss (or, with ``skip_nonfinite``, a skipped step),
and a tqdm bar. Checkpoints, metrics, trackers and callbacks' controls come from ``train.rundir``.

Metrics stay on the device as tensors and reach the CPU (and the other ranks) once every ``log_every``
steps, so a step costs no host sync beyond what the model itself needs.
"""

from __future__ import annotations

import contextlib
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
from rewardgauge.io import normalise_file_modes, write_json_atomic
from rewardgauge.modeling.loading import quiet_transformers
from rewardgauge.train.config import LoopConfig, RLConfig
from rewardgauge.train.rundir import Callback, Control, RunDir, StepState, notify

# A loss function takes (model, batch) and returns the loss and a dict of 0-d metric tensors (kept on device).
LossFn = Callable[[torch.nn.Module, Any], tuple[torch.Tensor, dict[str, torch.Tensor]]]


@dataclass
class LoopResult:
    model: torch.nn.Module  # unwrapped (no DDP wrapper)
    steps: int  # optimizer steps done in total, including those before a resume
    examples: int  # examples this call trained on (all processes)
    seconds: float  # wall time of this call's training steps
    last_metrics: dict[str, float]
    stopped: bool = False  # a callback asked for a clean stop before the last step


def make_accelerator(cfg: LoopConfig | RLConfig):
    """The Accelerator for ``cfg``. Under ``torchrun`` on a machine without a GPU, DDP runs on CPU (gloo)."""
    from accelerate import Accelerator

    from rewardgauge.modeling.loading import resolve_device

    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    device = resolve_device(cfg.device) if cfg.device else None  # a bad name: one line, before any work
    cpu = cfg.cpu or (device is not None and device.type == "cpu") or (distributed and not torch.cuda.is_available())
    if device is not None and device.type == "cuda" and device.index is not None and not distributed:
        torch.cuda.set_device(device)  # accelerate places a single process on the current CUDA device
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


def _weights_finite(params: Sequence[torch.nn.Parameter]) -> bool:
    """One pass over the trainable weights (before each checkpoint): a diverged step must not be saved."""
    return bool(torch.stack([p.detach().isfinite().all() for p in params]).all())


def _step_finite(acc, loss: torch.Tensor, grad_norm: torch.Tensor | None) -> bool:
    """Whether this step's loss and gradient are finite on every process (one host sync)."""
    flag = torch.isfinite(loss).all()
    if grad_norm is not None:
        flag = flag & torch.isfinite(grad_norm).all()
    flag = flag.float().reshape(1)
    if acc.num_processes > 1:
        flag = acc.reduce(flag, reduction="sum") / acc.num_processes
    return bool(flag.item() == 1.0)


def fit(acc, model: torch.nn.Module, examples: Sequence[Any], lengths: Sequence[int],
        collate: Callable[[list[Any]], Any], loss_fn: LossFn, cfg: LoopConfig, run: RunDir,
        *, callbacks: Sequence[Callback] = (),
        evaluate: Callable[[torch.nn.Module], dict[str, float]] | None = None, eval_every: int = 0,
        desc: str = "train") -> LoopResult:
    """Train ``model`` on ``examples`` with ``loss_fn``; checkpoints and metrics go into ``run``.

    ``collate(list_of_examples)`` builds a batch of CPU tensors (moved to the device here); ``lengths`` drive
    length bucketing. ``evaluate(model)`` (main process only) runs every ``eval_every`` steps and at the end;
    its numbers join that step's metrics line with an ``eval_`` prefix. ``callbacks`` see each step's metrics
    and may return a ``Control`` asking for a checkpoint now or a clean stop (checkpointed, ``result.stopped``).
    ``run.begin()`` is called here, after the last check of the inputs, unless the recipe called it already.
    """
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    world, rank = acc.num_processes, acc.process_index
    steps_per_epoch = len(batch_plan(lengths, cfg.batch_size, cfg.seed, 0, world, rank, cfg.bucket)) // cfg.grad_accum
    if steps_per_epoch == 0:
        raise InputError(f"{len(examples)} examples make no full optimizer step with batch_size={cfg.batch_size}, "
                         f"grad_accum={cfg.grad_accum} on {world} process(es)")
    total = cfg.max_steps or cfg.epochs * steps_per_epoch
    if not run.begun:
        run.begin()

    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(cfg.schedule, int(cfg.warmup_ratio * total), total))
    model, optimizer = acc.prepare(model, optimizer)
    # The scheduler is stepped by hand once per optimizer step (prepared, it would step once per process).
    acc.register_for_checkpointing(scheduler)
    step, state = run.checkpoints.restore()
    if step == 0:
        set_seed(cfg.seed)
    skipped = state.get("nonfinite_skipped", 0)

    bar = tqdm(total=total, initial=step, desc=desc, disable=not (cfg.progress and acc.is_main_process),
               dynamic_ncols=True)
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    plan, plan_epoch = None, -1
    start, seen, first_step, stopped = time.perf_counter(), 0, step, False
    try:
        while step < total:
            epoch, offset = divmod(step, steps_per_epoch)
            if epoch != plan_epoch:
                plan, plan_epoch = batch_plan(lengths, cfg.batch_size, cfg.seed, epoch, world, rank, cfg.bucket), epoch
            values: dict[str, torch.Tensor] = {}
            step_loss = None
            for j in range(cfg.grad_accum):
                idx = plan[offset * cfg.grad_accum + j]
                batch = _to_device(collate([examples[i] for i in idx]), acc.device)
                # Gradients are all-reduced only on the last micro-batch of a step.
                sync = contextlib.nullcontext() if j == cfg.grad_accum - 1 else acc.no_sync(model)
                with sync, acc.autocast():
                    loss, m = loss_fn(model, batch)
                    acc.backward(loss / cfg.grad_accum if cfg.grad_accum > 1 else loss)
                if cfg.skip_nonfinite:
                    step_loss = loss.detach() if step_loss is None else step_loss + loss.detach()
                for k, v in m.items():
                    v = v.detach() if cfg.grad_accum == 1 else v.detach() / cfg.grad_accum
                    values[k] = values[k] + v if k in values else v
                seen += len(idx) * world
            if cfg.max_grad_norm:
                values["grad_norm"] = acc.clip_grad_norm_(params, cfg.max_grad_norm)
            lr = scheduler.get_last_lr()[0]
            if cfg.skip_nonfinite and not _step_finite(acc, step_loss, values.get("grad_norm")):
                skipped += 1
                values = {}  # no update; the line keeps step, lr and the count
            else:
                optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            bar.update(1)
            info = {"step": step, "epoch": epoch, "lr": lr, "time": round(time.perf_counter() - start, 4)}
            if cfg.skip_nonfinite:
                info["nonfinite_skipped"] = skipped
            run.metrics.add(info, values)

            evaluated = False
            if evaluate is not None and ((eval_every and step % eval_every == 0) or step == total):
                results = evaluate(acc.unwrap_model(model)) if acc.is_main_process else {}
                acc.wait_for_everyone()
                run.metrics.update_last({f"eval_{k}": v for k, v in results.items()})
                model.train()
                evaluated = True
            row = None
            if callbacks or step % cfg.log_every == 0 or step == total or evaluated:
                row = run.metrics.flush()
                shown = sorted(k for k in values if row.get(k) is not None)[:4]
                bar.set_postfix({k: f"{row[k]:.4g}" for k in shown}, refresh=False)
            control = notify(callbacks, StepState(step=step, total_steps=total, epoch=epoch, metrics=row,
                                                  model=model, accelerator=acc, run=run)) if callbacks else Control()
            if (cfg.save_every and step % cfg.save_every == 0) or step == total or control.save_now or control.stop:
                run.metrics.flush()
                if not _weights_finite(params):
                    raise run.nonfinite(step, "the weights are no longer finite")
                run.checkpoints.save(step, {"nonfinite_skipped": skipped} if cfg.skip_nonfinite else None)
            if control.stop:
                stopped = True
                break
    except BaseException:
        bar.close()
        run.end(flush=False)
        raise
    run.end()
    bar.close()
    return LoopResult(model=acc.unwrap_model(model), steps=step, examples=seen,
                      seconds=time.perf_counter() - start if step > first_step else 0.0,
                      last_metrics=run.metrics.last, stopped=stopped)


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if callable(getattr(batch, "to", None)):  # a batch object that moves its own tensors
        return batch.to(device)
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
