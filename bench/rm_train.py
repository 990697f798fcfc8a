"""Reward-model training speed: rewardgauge' loop against TRL's RewardTrainer on the same work.

Same tiny Llama (built from config, saved to a temp folder), same lab pairs (TRL gets them as chat messages
and applies the same chat template, so both see the same token ids), same batch size, max length,
learning-rate schedule, gradient clipping, optimizer (fused AdamW) and number of steps. TRL runs with its
CPU pitfalls fixed (bf16=False, use_cpu=True, no activation checkpointing, no reporting, no tqdm, no saves).

Sides, each in its own process (so its peak RSS is its own):
  ours             rewardgauge defaults: layout packed (each pair's prompt once, chosen and rejected after it,
                   several pairs per unpadded row, the last layer at the read positions only), length bucketing
  ours_no_bucket   the same with random batches, as TRL's default sampler makes them
  trl              TRL RewardTrainer defaults (random batches)
  trl_grouped      TRL with train_sampling_strategy="group_by_length" (its length grouping)

This machine is shared, so the sides take turns: one token passes round a ring of processes and only its
holder trains one step. Contention then falls on every side alike. A step is timed from getting the token
to the end of the step, so data loading, logging and per-step bookkeeping count for both; warm-up steps
and the last step are left out: pairs/s = timed pairs / summed step time.

Prints one JSON line: ours_pairs_per_s, trl_pairs_per_s, ratio (ours / trl), ratio_vs_trl_grouped, the other sides,
peak RSS; each side's model GFLOP/s over its timed steps and its fraction of the fp32 matmul peak on the same threads
(``<side>_gflops``, ``<side>_flops_fraction_of_peak``, ``peak_gflops``; see _flops.py and peak.py).

    .venv/bin/python bench/rm_train.py [--preset small] [--batch-size 16] [--steps 30] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from _flops import FlopCounter, flops_fields
from _lab import lab_pairs_and_model  # bench/ is sys.path[0] when a benchmark runs
from _turns import Ring, passthrough, peak_rss_mb, report, run_sides
from peak import matmul_peak_flops

SIDES = ("ours", "ours_no_bucket", "trl", "trl_grouped")


def run_ours(data: Path, root: Path, args, ring: Ring, bucket: bool) -> dict:
    from rewardgauge.train.reward import RewardTrainConfig, train_reward_model

    cfg = RewardTrainConfig(model=str(root / "model"), data=str(data), out=str(root / f"ours-{bucket}"),
                            batch_size=args.batch_size, max_steps=args.steps, max_length=args.max_length,
                            lr=args.lr, warmup_ratio=0.1, schedule="cosine", max_grad_norm=1.0, seed=args.seed,
                            save_every=0, progress=False, bucket=bucket)
    result = train_reward_model(cfg, callbacks=[lambda state: ring.step_done(state.step)])
    return {"last_loss": result.last_metrics.get("loss")}


def run_trl(data: Path, root: Path, args, ring: Ring, grouped: bool) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import RewardConfig, RewardTrainer

    from rewardgauge.data.io import load_pairs
    from rewardgauge.data.records import prompt_text

    # Conversational rows: TRL applies the tokenizer's chat template, giving the token ids ours uses.
    rows = [{"prompt": [{"role": "user", "content": prompt_text(p.prompt)}],
             "chosen": [{"role": "assistant", "content": p.chosen}],
             "rejected": [{"role": "assistant", "content": p.rejected}]} for p in load_pairs(data)]

    class Turns(TrainerCallback):
        def on_step_end(self, args_, state, control, **kw):
            ring.step_done(state.global_step)

    grouping = {}
    if grouped:  # the sampler reads a "length" column, which must survive column pruning (the collator ignores it)
        grouping = dict(train_sampling_strategy="group_by_length", length_column_name="length",
                        remove_unused_columns=False)
    config = RewardConfig(
        output_dir=str(root / f"trl-{grouped}"), per_device_train_batch_size=args.batch_size,
        max_steps=args.steps, max_length=args.max_length, learning_rate=args.lr, warmup_steps=0.1,
        lr_scheduler_type="cosine", max_grad_norm=1.0, seed=args.seed, bf16=False, use_cpu=True,
        activation_checkpointing=False, report_to="none", disable_tqdm=True, save_strategy="no",
        logging_steps=10, dataloader_num_workers=0, **grouping)
    trainer = RewardTrainer(model=str(root / "model"), args=config, train_dataset=Dataset.from_list(rows),
                            callbacks=[Turns()])
    if grouped:
        trainer.train_dataset = trainer.train_dataset.map(
            lambda ex: {"length": max(len(ex["chosen_ids"]), len(ex["rejected_ids"]))})
    trainer.train()
    loss = next((h["loss"] for h in reversed(trainer.state.log_history) if "loss" in h), None)
    return {"last_loss": loss}


def worker(side: str, data: Path, root: Path, args, fds: list[int]) -> None:
    ring = Ring(*fds, steps=args.steps, counter=FlopCounter().install())
    if side.startswith("ours"):
        result = run_ours(data, root, args, ring, bucket=side == "ours")
    else:
        result = run_trl(data, root, args, ring, grouped=side == "trl_grouped")
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
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help=(
        "torch threads per side; on a shared 2-core machine two OpenMP threads stall each other whenever "
        "another tenant takes a core, and one thread is both faster and steadier (for every side alike)"))
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
        "bench": "rm_train", "data": "lab", "preset": args.preset, "batch_size": args.batch_size,
        "max_length": args.max_length, "steps": args.steps, "timed_steps": results["ours"]["timed_steps"],
        "threads": args.threads,
        "ours_pairs_per_s": round(rate["ours"], 2), "trl_pairs_per_s": round(rate["trl"], 2),
        "ratio": round(rate["ours"] / rate["trl"], 3),
        "ours_no_bucket_pairs_per_s": round(rate["ours_no_bucket"], 2),
        "trl_grouped_pairs_per_s": round(rate["trl_grouped"], 2),
        "ratio_no_bucket_vs_trl": round(rate["ours_no_bucket"] / rate["trl"], 3),
        "ratio_vs_trl_grouped": round(rate["ours"] / rate["trl_grouped"], 3),
        **flops_fields(results, SIDES, peak),
        "ours_peak_rss_mb": results["ours"]["peak_rss_mb"], "trl_peak_rss_mb": results["trl"]["peak_rss_mb"],
        "ours_last_loss": results["ours"]["last_loss"], "trl_last_loss": results["trl"]["last_loss"],
    }))


if __name__ == "__main__":
    main()
