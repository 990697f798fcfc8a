"""GRPO speed: ``rewardgauge rl --algo grpo`` against TRL's GRPOTrainer on the same work, side by side.

Shared set-up (once, before the sides start): lab prompts and demonstrations, a tiny Llama built from config
and briefly fine-tuned on the demonstrations (so responses have lab-like, varied lengths and end with EOS,
as they would in a real run). Both sides then start from that model and run the same GRPO:

  prompts per step   --prompts-per-step (4); TRL: generation batch = per_device_train_batch_size = 4 x G
  group size G       --group-size (8)
  completion length  --max-new-tokens (48), sampling at temperature 1.0, no top-p / top-k
  reward             the lab's gold reward on the decoded text (TRL: as a reward function)
  advantage          (r - group mean) / (group std + eps); TRL: scale_rewards="group"
  loss               clipped surrogate (eps 0.2), token-mean over the step's tokens (TRL: loss_type="dapo",
                     its default), one update per generation batch (TRL: num_iterations=1,
                     steps_per_generation=1, gradient_accumulation_steps=1)
  KL                 beta 0.04 with the k3 estimator in the loss against the frozen starting model
                     (TRL's only form; both compute the reference's log-probabilities every step)
  optimizer          AdamW, lr 1e-5 constant, grad-norm clip 1.0
TRL runs with its CPU pitfalls fixed (bf16=False, use_cpu=True, gradient_checkpointing=False, which it turns
on by default and which would only slow it down here, report_to="none", no tqdm, no saves, logging every 10
steps). Ours writes metrics.jsonl and samples.jsonl every step (TRL logs less) and checkpoints only at the end.

Sides, each in its own process, taking turns one step at a time (``_turns.py``):
  ours         rewardgauge defaults: the G samples share one prefill, finished responses leave the batch;
               the training and reference forwards run each prompt once with its G responses after it in
               one unpadded sequence (layout "packed", Prefix Grouper)
  ours_plain   the same with layout "plain" (one padded row per response, the prompt repeated G times, as
               TRL does it)
  trl          TRL GRPOTrainer

Prints one JSON line: ours_samples_per_s, trl_samples_per_s, ratio (ours / trl), ours_plain_samples_per_s,
peak RSS of each side, and each side's mean completion length and mean reward over its timed steps;
each side's model GFLOP/s over its timed steps and its fraction of the fp32 matmul peak on the same threads
(``<side>_gflops``, ``<side>_flops_fraction_of_peak``, ``peak_gflops``; see _flops.py and peak.py).

    .venv/bin/python bench/grpo.py [--preset small] [--steps 16] [--group-size 8] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from _flops import FlopCounter, flops_fields
from _turns import Ring, passthrough, peak_rss_mb, report, run_sides
from peak import matmul_peak_flops

SIDES = ("ours", "ours_plain", "trl")


def prepare(root: Path, args) -> None:
    """Lab prompts, and the tiny Llama after ``--sft-steps`` of SFT (saved to root / "sft")."""
    from rewardgauge.lab.dataset import LabDataConfig, generate
    from rewardgauge.modeling.policy import init_model
    from rewardgauge.train.config import SFTConfig
    from rewardgauge.train.sft import run_sft

    lab = root / "lab"
    generate(LabDataConfig(out=str(lab), pairs=200, heldout_pairs=0, demos=4000, rl_prompts=512, seed=args.seed),
             progress=False)
    init_model([lab / "train.jsonl", lab / "sft.jsonl"], root / "model", preset=args.preset, seed=args.seed)
    run_sft(SFTConfig(model=str(root / "model"), data=str(lab / "sft.jsonl"), out=str(root / "sft"),
                      max_steps=args.sft_steps, batch_size=32, lr=2e-3, save_every=0, progress=False, seed=args.seed))


def run_ours(root: Path, args, ring: Ring, packed: bool) -> dict:
    from rewardgauge.config import load_config
    from rewardgauge.train.config import RLConfig
    from rewardgauge.train.rl import run_rl

    rows = []

    def turn(state):
        rows.append(state.metrics)
        ring.step_done(state.step)

    cfg = load_config(RLConfig, None, {
        "algo": "grpo", "prompts": str(root / "lab" / "rl_prompts.jsonl"), "out": str(root / f"ours-{packed}"),
        "policy.model": str(root / "sft"), "reward.models": "lab-gold", "reward.gold": "none", "seed": args.seed,
        "steps": args.steps, "prompts_per_step": args.prompts_per_step, "generation.group_size": args.group_size,
        "generation.max_new_tokens": args.max_new_tokens, "policy.lr": args.lr, "kl.coef": args.beta,
        "kl.estimator": "k3", "layout": "packed" if packed else "plain", "save_every": 0, "progress": False})
    run_rl(cfg, callbacks=[turn])
    timed = rows[args.warmup + 1:-1]  # the rows of the timed steps (the first step runs before the ring)
    return {"mean_length": statistics.mean(r["response_length"] for r in timed),
            "mean_reward": statistics.mean(r["reward_mean"] for r in timed)}


def run_trl(root: Path, args, ring: Ring) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from rewardgauge.io import read_jsonl
    from rewardgauge.rewards.loading import load_reward_model

    gold = load_reward_model("lab-gold")
    rows = [{"prompt": [{"role": "user", "content": r["prompt"]}]} for r in read_jsonl(root / "lab" / "rl_prompts.jsonl")]

    def lab_gold(prompts, completions, **kwargs):
        texts = [c[-1]["content"] for c in completions]
        return gold.score([p[-1]["content"] for p in prompts], texts).reward.tolist()

    class Turns(TrainerCallback):
        def on_step_end(self, args_, state, control, **kw):
            ring.step_done(state.global_step)

    per_step = args.prompts_per_step * args.group_size
    config = GRPOConfig(
        output_dir=str(root / "trl"), per_device_train_batch_size=per_step, num_generations=args.group_size,
        max_completion_length=args.max_new_tokens, temperature=1.0, max_steps=args.steps, learning_rate=args.lr,
        lr_scheduler_type="constant", max_grad_norm=1.0, beta=args.beta, epsilon=0.2, loss_type="dapo",
        scale_rewards="group", num_iterations=1, gradient_accumulation_steps=1, seed=args.seed, bf16=False,
        use_cpu=True, gradient_checkpointing=False, report_to="none", disable_tqdm=True, save_strategy="no",
        logging_steps=10, dataloader_num_workers=0)
    trainer = GRPOTrainer(model=str(root / "sft"), reward_funcs=lab_gold, args=config,
                          train_dataset=Dataset.from_list(rows), callbacks=[Turns()])
    trainer.train()
    logged = [h for h in trainer.state.log_history if "completions/mean_length" in h]
    return {"mean_length": statistics.mean(h["completions/mean_length"] for h in logged),
            "mean_reward": statistics.mean(h["reward"] for h in logged)}


def worker(side: str, root: Path, args, fds: list[int]) -> None:
    ring = Ring(*fds, steps=args.steps, counter=FlopCounter().install())
    result = run_trl(root, args, ring) if side == "trl" else run_ours(root, args, ring, packed=side == "ours")
    timed = ring.timed(args.warmup)
    per_step = args.prompts_per_step * args.group_size
    result.update(side=side, samples_per_s=per_step * len(timed) / sum(timed), timed_steps=len(timed),
                  flops_per_s=ring.timed_flops_per_s(args.warmup),
                  step_seconds=[round(t, 3) for t in timed], peak_rss_mb=peak_rss_mb())
    report(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="small", choices=["tiny", "small"])
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=2, help="timed steps left out at the start")
    parser.add_argument("--prompts-per-step", type=int, default=4)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--beta", type=float, default=0.04)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--sft-steps", type=int, default=150, help="SFT steps of the shared starting model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per side (see bench/rm_train.py)")
    parser.add_argument("--prepared", default=None, help="folder to keep (and reuse) the shared set-up in")
    parser.add_argument("--verbose", action="store_true", help="also print every timed step's seconds per side")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        side, root, *fds = args.worker
        worker(side, Path(root), args, [int(x) for x in fds])
        return

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.prepared or tmp)
        if not (root / "sft" / "model.safetensors").is_file():
            prepare(root, args)
        results = run_sides(__file__, SIDES, passthrough(args), env, [str(root)])
    peak = matmul_peak_flops(args.threads)  # the same threads as each side, after them
    rate = {s: results[s]["samples_per_s"] for s in SIDES}
    print(json.dumps({
        "bench": "grpo", "data": "lab", "preset": args.preset, "prompts_per_step": args.prompts_per_step,
        "group_size": args.group_size, "max_new_tokens": args.max_new_tokens, "steps": args.steps,
        "timed_steps": results["ours"]["timed_steps"], "threads": args.threads,
        "ours_samples_per_s": round(rate["ours"], 2), "trl_samples_per_s": round(rate["trl"], 2),
        "ratio": round(rate["ours"] / rate["trl"], 3),
        "ours_plain_samples_per_s": round(rate["ours_plain"], 2),
        "ratio_plain_vs_trl": round(rate["ours_plain"] / rate["trl"], 3),
        **flops_fields(results, SIDES, peak),
        "ours_peak_rss_mb": results["ours"]["peak_rss_mb"], "trl_peak_rss_mb": results["trl"]["peak_rss_mb"],
        **{f"{s}_mean_length": round(results[s]["mean_length"], 2) for s in SIDES},
        **{f"{s}_mean_reward": round(results[s]["mean_reward"], 3) for s in SIDES},
        **({f"{s}_step_seconds": results[s]["step_seconds"] for s in SIDES} if args.verbose else {}),
    }))


if __name__ == "__main__":
    main()
