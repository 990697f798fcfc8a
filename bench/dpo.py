"""DPO speed: ``rewardgauge dpo`` against TRL's DPOTrainer on the same work, side by side.

Same tiny Llama (built from config), same lab pairs (TRL gets them as chat messages and applies the same chat
template, so both see the same token ids), same batch size, max length (TRL truncates keep_start, ours cuts
the responses' ends: neither cuts anything at the default 128 on lab pairs), sigmoid loss with beta 0.1,
AdamW at a constant learning rate, grad-norm clip 1.0 and the same number of steps. TRL runs with its CPU
pitfalls fixed (bf16=False, use_cpu=True, gradient_checkpointing=False, which it turns on by default and
which would only slow it down here, report_to="none", no tqdm, no saves, logging every 10 steps).

Sides, each in its own process, taking turns one step at a time (``_turns.py``):
  ours             rewardgauge defaults: the reference's log-probabilities computed once before training; each
                   prompt once with its chosen and rejected response after it, the batch in one unpadded
                   sequence (layout "packed", Prefix Grouper); batches of similar lengths (length bucketing)
  ours_plain       layout "plain" (prompt + response rows, 2 per pair, padded) and random batches, as TRL
                   makes them: what remains is the reference computed once and the leaner loop
  trl              TRL DPOTrainer defaults: the reference model runs on every batch
  trl_precompute   TRL with precompute_ref_log_probs=True (the reference once, before training, like ours)
The reference pass before training is not timed on either side that has one.

Prints one JSON line: ours_pairs_per_s, trl_pairs_per_s, ratio (ours / trl), the other sides and their ratios,
peak RSS of each side, and the last logged loss of each;
each side's model GFLOP/s over its timed steps and its fraction of the fp32 matmul peak on the same threads
(``<side>_gflops``, ``<side>_flops_fraction_of_peak``, ``peak_gflops``; see _flops.py and peak.py).

    .venv/bin/python bench/dpo.py [--preset small] [--batch-size 16] [--steps 30] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from _flops import FlopCounter, flops_fields
from _lab import lab_pairs_and_model
from _turns import Ring, passthrough, peak_rss_mb, report, run_sides
from peak import matmul_peak_flops

SIDES = ("ours", "ours_plain", "trl", "trl_precompute")


def run_ours(data: Path, root: Path, args, ring: Ring, packed: bool) -> dict:
    """``packed`` False is the plain side: padded rows and no length bucketing."""
    from rewardgauge.train.config import DPOConfig
    from rewardgauge.train.dpo import run_dpo

    cfg = DPOConfig(model=str(root / "model"), data=str(data), out=str(root / f"ours-{packed}"),
                    batch_size=args.batch_size, max_steps=args.steps, max_length=args.max_length,
                    max_prompt_length=args.max_length // 2, lr=args.lr, beta=0.1, loss="sigmoid",
                    warmup_ratio=0.0, schedule="constant", max_grad_norm=1.0, seed=args.seed, save_every=0,
                    progress=False, layout="packed" if packed else "plain", bucket=packed)
    result = run_dpo(cfg, callbacks=[lambda state: ring.step_done(state.step)])
    return {"last_loss": result.last_metrics.get("loss")}


def run_trl(data: Path, root: Path, args, ring: Ring, precompute: bool) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from rewardgauge.data.io import load_pairs
    from rewardgauge.data.records import prompt_text

    rows = [{"prompt": [{"role": "user", "content": prompt_text(p.prompt)}],
             "chosen": [{"role": "assistant", "content": p.chosen}],
             "rejected": [{"role": "assistant", "content": p.rejected}]} for p in load_pairs(data)]

    class Turns(TrainerCallback):
        def on_step_end(self, args_, state, control, **kw):
            ring.step_done(state.global_step)

    config = DPOConfig(
        output_dir=str(root / f"trl-{precompute}"), per_device_train_batch_size=args.batch_size,
        max_steps=args.steps, max_length=args.max_length, learning_rate=args.lr, lr_scheduler_type="constant",
        max_grad_norm=1.0, beta=0.1, loss_type=["sigmoid"], precompute_ref_log_probs=precompute,
        seed=args.seed, bf16=False, use_cpu=True, gradient_checkpointing=False, report_to="none",
        disable_tqdm=True, save_strategy="no", logging_steps=10, dataloader_num_workers=0)
    trainer = DPOTrainer(model=str(root / "model"), args=config, train_dataset=Dataset.from_list(rows),
                         callbacks=[Turns()])
    trainer.train()
    loss = next((h["loss"] for h in reversed(trainer.state.log_history) if "loss" in h), None)
    return {"last_loss": loss}


def worker(side: str, data: Path, root: Path, args, fds: list[int]) -> None:
    ring = Ring(*fds, steps=args.steps, counter=FlopCounter().install())
    if side.startswith("ours"):
        result = run_ours(data, root, args, ring, packed=side == "ours")
    else:
        result = run_trl(data, root, args, ring, precompute=side == "trl_precompute")
    timed = ring.timed(args.warmup)
    result.update(side=side, pairs_per_s=args.batch_size * len(timed) / sum(timed), timed_steps=len(timed),
                  flops_per_s=ring.timed_flops_per_s(args.warmup),
                  peak_rss_mb=peak_rss_mb())
    report(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="small", choices=["tiny", "small"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=4, help="timed steps left out at the start")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per side (see bench/rm_train.py)")
    parser.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        side, data, root, *fds = args.worker
        worker(side, Path(data), Path(root), args, [int(x) for x in fds])
        return

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = lab_pairs_and_model(root, args.batch_size * (args.steps + 1), args.preset, args.seed)
        results = run_sides(__file__, SIDES, passthrough(args), env, [str(data), str(root)])
    peak = matmul_peak_flops(args.threads)  # the same threads as each side, after them
    rate = {s: results[s]["pairs_per_s"] for s in SIDES}
    print(json.dumps({
        "bench": "dpo", "data": "lab", "preset": args.preset, "batch_size": args.batch_size,
        "max_length": args.max_length, "steps": args.steps, "timed_steps": results["ours"]["timed_steps"],
        "threads": args.threads,
        "ours_pairs_per_s": round(rate["ours"], 2), "trl_pairs_per_s": round(rate["trl"], 2),
        "ratio": round(rate["ours"] / rate["trl"], 3),
        "ours_plain_pairs_per_s": round(rate["ours_plain"], 2),
        "trl_precompute_pairs_per_s": round(rate["trl_precompute"], 2),
        "ratio_vs_trl_precompute": round(rate["ours"] / rate["trl_precompute"], 3),
        "ratio_plain_vs_trl_precompute": round(rate["ours_plain"] / rate["trl_precompute"], 3),
        **flops_fields(results, SIDES, peak),
        "ours_peak_rss_mb": results["ours"]["peak_rss_mb"], "trl_peak_rss_mb": results["trl"]["peak_rss_mb"],
        "trl_precompute_peak_rss_mb": results["trl_precompute"]["peak_rss_mb"],
        "ours_last_loss": results["ours"]["last_loss"], "trl_last_loss": results["trl"]["last_loss"],
    }))


if __name__ == "__main__":
    main()
