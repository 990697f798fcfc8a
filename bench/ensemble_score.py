"""Scoring cost of a K-member reward-model ensemble against one member, for each ensemble form.

Builds in a temp folder: lab pairs, a tiny Llama from config, one single reward model and one K-member
ensemble per form (independent, shared heads, LoRA), each trained for one step through the real training
path (``rm train``; timing does not depend on the weights).
All sides have the same backbone size and score the same N responses (both sides of N/2 pairs) with the
same batch size, tokenisation included. The LoRA ensemble is scored two ways: one pass per adapter (the
default) and one mixed-adapter batch (``lora_batching="mixed"``).

Time: the sides take turns (shuffled order each round) so load on this shared machine falls on all alike;
median of the repeats. Memory: each side is loaded and run once in a child process of its own, after the
same warm-up (imports, one single-model load): peak RSS above the RSS before loading (weights,
activations, allocator), and the exact bytes of the parameters.

Prints one JSON line: seconds, peak_rss_mb and params_mb per side, and each as a ratio to the single member.

    .venv/bin/python bench/ensemble_score.py [--k 5] [--responses 256] [--repeats 7] [--preset tiny]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _lab import lab_pairs_and_model  # bench/ is sys.path[0] when a benchmark runs
from _turns import median_seconds_in_turns

SIDES = ("single", "independent", "shared", "lora", "lora_mixed")
FORMS = ("independent", "shared", "lora")


def build(root: Path, args) -> None:
    """One reward model and a K-member ensemble per form, one training step each."""
    from rewardgauge.train.config import RewardTrainConfig
    from rewardgauge.train.ensemble import train_ensemble
    from rewardgauge.train.reward import train_reward_model

    common = dict(model=str(root / "model"), data=str(root / "lab" / "train.jsonl"), max_steps=1, batch_size=8,
                  save_every=0, progress=False, seed=args.seed)
    train_reward_model(RewardTrainConfig(out=str(root / "single"), **common))
    for form in FORMS:
        train_ensemble(RewardTrainConfig(out=str(root / form), members=args.k, ensemble_form=form,
                                         reference_size=64, **common))


def load(root: Path, side: str, batch_size: int):
    from rewardgauge.rewards.ensemble import EnsembleRewardModel
    from rewardgauge.rewards.hf import HFRewardModel

    if side == "single":
        return HFRewardModel.from_pretrained(root / "single", device="cpu", batch_size=batch_size)
    if side == "lora_mixed":
        return EnsembleRewardModel.from_pretrained(root / "lora", device="cpu", batch_size=batch_size,
                                                   lora_batching="mixed")
    return EnsembleRewardModel.from_pretrained(root / side, device="cpu", batch_size=batch_size)


def batch(root: Path, n: int) -> tuple[list, list[str]]:
    from rewardgauge.data.io import load_pairs

    pairs = load_pairs(root / "lab" / "train.jsonl")
    prompts = [p.prompt for p in pairs for _ in (0, 1)]
    responses = [r for p in pairs for r in (p.chosen, p.rejected)]
    return prompts[:n], responses[:n]


def params_mb(rm) -> float:
    modules = getattr(rm, "modules", None) or [rm.model]
    seen = {id(p): p.numel() * p.element_size() for m in modules for p in m.parameters()}
    return sum(seen.values()) / 2**20


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def child(args) -> None:
    """Load one side and score the batch once; print its memory as JSON."""
    import gc

    import torch

    torch.set_num_threads(args.threads)
    root = Path(args.root)
    prompts, responses = batch(root, args.responses)
    # Warm-up, the same for every side: imports (peft too), tokenizer and model classes, outside the count.
    import peft  # noqa: F401

    load(root, "single", args.batch_size).score(prompts[:2], responses[:2])
    gc.collect()
    try:  # restart the peak-RSS counter (Linux): the peak is then this side's own
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    before = _status_kb("VmRSS")
    rm = load(root, args.child, args.batch_size)
    rm.score(prompts, responses)
    print(json.dumps({"peak_rss_mb": (_status_kb("VmHWM") - before) / 1024, "params_mb": params_mb(rm)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=5, help="ensemble members")
    parser.add_argument("--responses", type=int, default=256, help="responses scored per call")
    parser.add_argument("--batch-size", type=int, default=64, help="scoring batch size (sequences)")
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per side")
    parser.add_argument("--preset", default="tiny", choices=("tiny", "small"), help="Llama size")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is steadiest on a shared machine)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--root", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_ensemble_") as tmp:
        root = Path(tmp)
        lab_pairs_and_model(root, max(args.responses // 2, 16), args.preset, args.seed)
        build(root, args)
        prompts, responses = batch(root, args.responses)

        memory = {}
        for side in SIDES:
            out = subprocess.run([sys.executable, __file__, "--child", side, "--root", str(root),
                                  "--responses", str(args.responses), "--batch-size", str(args.batch_size),
                                  "--threads", str(args.threads)], capture_output=True, text=True, check=True)
            memory[side] = json.loads(out.stdout.strip().splitlines()[-1])

        models = {side: load(root, side, args.batch_size) for side in SIDES}
        seconds = median_seconds_in_turns({side: (lambda rm=rm: rm.score(prompts, responses))
                                           for side, rm in models.items()}, args.repeats, args.seed)

    peak = {s: memory[s]["peak_rss_mb"] for s in SIDES}
    params = {s: memory[s]["params_mb"] for s in SIDES}
    print(json.dumps({
        "bench": "ensemble_score", "k": args.k, "responses": len(responses), "batch_size": args.batch_size,
        "preset": args.preset, "threads": args.threads, "repeats": args.repeats, "data": "lab",
        "lora": "one pass per adapter; lora_mixed: one mixed-adapter batch (peft adapter_names)",
        "seconds": {s: round(v, 4) for s, v in seconds.items()},
        "time_ratio": {s: round(seconds[s] / seconds["single"], 2) for s in SIDES[1:]},
        "peak_rss_mb": {s: round(v, 1) for s, v in peak.items()},
        "peak_rss_ratio": {s: round(peak[s] / peak["single"], 2) for s in SIDES[1:]},
        "params_mb": {s: round(v, 2) for s, v in params.items()},
        "params_ratio": {s: round(params[s] / params["single"], 2) for s in SIDES[1:]},
    }))


if __name__ == "__main__":
    main()
