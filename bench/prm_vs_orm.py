"""Process vs outcome reward models for best-of-N on the lab (Lightman et al. 2023, "Let's Verify Step by
Step": PRM 78.2 % > ORM 72.4 % > majority vote 69.6 % at best-of-1860 on MATH).

    python bench/prm_vs_orm.py [--quick] [--seeds 0,1,2] [--out runs/bench_prm]

1. The lab's arithmetic prompts (train side / held-out side), SFT demonstrations, and a tiny Llama policy
   fine-tuned on them (once; shared by every seed).
2. Per seed: the policy samples solutions to the training prompts; their steps are labelled by Monte Carlo
   rollouts of the same policy (Math-Shepherd, soft estimates; nobody's step labels are used); a PRM is
   trained on those labels and an ORM (the same backbone, data and budget) on the final answer's correctness.
   A third model, ``prm_gold``, is trained on the lab's gold step labels (the analogue of PRM800K's human
   labels), for reference.
3. Per seed: the policy samples K solutions to each held-out prompt. A solution counts as right only when its
   answer and every step are right (the lab's gold). Best-of-N accuracy for N = 1, 2, 4, ... K for the PRM
   under each aggregation (min, product, last, mean), the ORM, and majority vote, on the same random subsets.
4. The rollout-labelled PRM as a step classifier on those held-out samples against the gold step labels:
   step F1 (finding wrong steps) and ProcessBench's earliest-error F1.
5. Does the policy stumble into right answers? GRPO (``rewardgauge rl``) from the SFT policy against the ORM,
   against the rollout-labelled PRM (its min aggregate) and, in the full run, against the PRM as a dense
   reward (process supervision); then the held-out prompts are sampled again and the fraction of right-answer
   solutions with a wrong step (the lab's gold) is compared with the SFT policy's. ``--quick`` does this for
   the first seed only.

Prints one JSON line: ``bon`` (method -> N -> accuracy, mean over seeds), ``prm_step_f1``,
``prm_earliest_error_f1``, ``rl_stumbling`` (per reward: answer-right and strict rates and the share of
right answers with a wrong step, before and after RL, mean over the seeds that ran RL), and the rest (per
seed, answer-only accuracy, the reward models' own metrics).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

QUICK = dict(demos=3000, sft_epochs=3, train_samples=4, rollouts=4, test_samples=32, rm_epochs=3, draws=100,
             gold_prm=False, rl_seeds=1, rl_steps=15, rl_rewards=("orm", "prm"), rl_eval_samples=8)
FULL = dict(demos=8000, sft_epochs=4, train_samples=12, rollouts=4, test_samples=64, rm_epochs=4, draws=200,
            gold_prm=True, rl_seeds=3, rl_steps=40, rl_rewards=("orm", "prm", "prm_dense"), rl_eval_samples=16)
# GRPO against each reward (the same for all; not tuned to any outcome): 16 prompts x 8 samples per step.
RL = {"algo": "grpo", "prompts_per_step": 16, "generation.group_size": 8, "generation.max_new_tokens": 40,
      "policy.lr": 2e-4, "kl.coef": 0.02, "save_every": 0, "samples_per_step": 0, "progress": False}
AGGREGATIONS = ("min", "product", "last", "mean")
MAX_NEW_TOKENS = 40


@dataclass
class Timer:
    seconds: dict

    def __call__(self, name: str, t0: float) -> None:
        self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - t0, 1)


def lab_and_policy(root: Path, sizes: dict, timer: Timer) -> tuple[list[str], list[str], Path]:
    from rewardgauge.io import read_jsonl
    from rewardgauge.lab.dataset import LabDataConfig, generate
    from rewardgauge.modeling.policy import init_model
    from rewardgauge.train.config import SFTConfig
    from rewardgauge.train.sft import run_sft

    t0 = time.perf_counter()
    lab = root / "lab"
    if not (lab / "world.json").is_file():
        generate(LabDataConfig(out=str(lab), families={"arithmetic": 1.0}, pairs=0, heldout_pairs=0,
                               demos=sizes["demos"], rl_prompts=400, seed=0), progress=False)
    train_prompts = [r["prompt"] for r in read_jsonl(lab / "rl_prompts.jsonl")]
    test_prompts = [r["prompt"] for r in read_jsonl(lab / "eval_prompts.jsonl")]
    policy = root / "sft"
    if not (policy / "config.json").is_file():
        init_model([lab / "sft.jsonl"], root / "init", preset="tiny", seed=0)
        run_sft(SFTConfig(model=str(root / "init"), data=str(lab / "sft.jsonl"), out=str(policy),
                          epochs=sizes["sft_epochs"], lr=2e-3, batch_size=32, progress=False, save_every=50,
                          resume=True))
    timer("lab_and_sft", t0)
    return train_prompts, test_prompts, policy


def records_of(prompts: list[str], responses: list[list[str]], tag: str):
    """Gold-labelled step records of the responses that have steps (a policy sometimes stops at once)."""
    from rewardgauge.data.steps import split_steps
    from rewardgauge.lab.steps import lab_step_record

    return [lab_step_record(p, r, id=f"{tag}-{i}-{j}") for i, (p, rs) in enumerate(zip(prompts, responses))
            for j, r in enumerate(rs) if split_steps(r, " . ")]


def judged(prompt: str, response: str) -> tuple[bool, bool, str | None]:
    """(answer right, answer and every step right, the stated answer) by the lab's gold."""
    from rewardgauge.data.steps import extract_answer, split_steps
    from rewardgauge.lab.steps import answer_is_right, gold_step_labels

    answer = answer_is_right(prompt, response)
    return answer, answer and all(gold_step_labels(prompt, split_steps(response, " . "))), extract_answer(response)


def train(policy: Path, data: Path, out: Path, target: str, sizes: dict, seed: int) -> Path:
    from rewardgauge.train.config import PRMTrainConfig
    from rewardgauge.train.prm import train_prm

    if not (out / "prm.json").is_file():
        train_prm(PRMTrainConfig(model=str(policy), data=str(data), out=str(out), separator=" . ", target=target,
                                 epochs=sizes["rm_epochs"], batch_size=32, lr=1e-3, seed=seed, progress=False,
                                 save_every=0))
    return out


def policy_rates(prompts: list[str], responses: list[list[str]]) -> dict:
    """Answer-right and strict (answer and every step) rates, and the share of right answers with a wrong step."""
    verdicts = [judged(p, r) for p, rs in zip(prompts, responses) for r in rs]
    right = [strict for answer, strict, _ in verdicts if answer]
    return {"answer_right": round(float(np.mean([v[0] for v in verdicts])), 4),
            "strict_right": round(float(np.mean([v[1] for v in verdicts])), 4),
            "wrong_step_among_right_answers": round(sum(not s for s in right) / max(1, len(right)), 4),
            "right_answers": len(right)}


def rl_against(reward: Path, dense: bool, root: Path, policy: Path, prompts_file: Path, test_prompts: list[str],
               sizes: dict, seed: int) -> dict:
    """GRPO from ``policy`` against ``reward``, then the held-out prompts sampled again and judged by the gold."""
    from rewardgauge.config import load_config
    from rewardgauge.modeling.sampling import HFSampler
    from rewardgauge.train.config import RLConfig
    from rewardgauge.train.rl import run_rl

    out = root / ("rl_" + reward.name + ("_dense" if dense else ""))
    if not (out / "rl.json").is_file():
        run_rl(load_config(RLConfig, None, {**RL, "prompts": str(prompts_file), "out": str(out),
                                            "policy.model": str(policy), "reward.models": str(reward),
                                            "reward.dense": dense, "steps": sizes["rl_steps"], "seed": seed}))
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    sampler = HFSampler.from_pretrained(out, device="cpu", max_new_tokens=MAX_NEW_TOKENS, batch_size=512)
    responses = sampler(test_prompts, [""] * len(test_prompts), sizes["rl_eval_samples"], 30_000 + seed)
    first, last = rows[0], rows[-1]
    return {**policy_rates(test_prompts, responses), "steps": len(rows),
            "reward_first_step": round(first["reward_mean"], 4), "reward_last_step": round(last["reward_mean"], 4),
            "gold_first_step": round(first.get("gold_mean", float("nan")), 4),
            "gold_last_step": round(last.get("gold_mean", float("nan")), 4)}


def run_seed(seed: int, root: Path, policy: Path, train_prompts, test_prompts, sizes: dict, timer: Timer,
             with_rl: bool) -> dict:
    import dataclasses

    from rewardgauge.data.steps import save_step_records, split_steps
    from rewardgauge.lab.steps import answer_is_right
    from rewardgauge.modeling.sampling import HFSampler
    from rewardgauge.rewards.best_of_n import compare, method_scores, powers_of_two
    from rewardgauge.rewards.process import ProcessRewardModel
    from rewardgauge.rewards.step_evaluation import evaluate_steps
    from rewardgauge.train.rollout_labels import RolloutConfig, label_with_rollouts

    run = root / f"seed{seed}"
    run.mkdir(parents=True, exist_ok=True)
    sampler = HFSampler.from_pretrained(policy, device="cpu", max_new_tokens=MAX_NEW_TOKENS, batch_size=512)

    t0 = time.perf_counter()
    responses = sampler(train_prompts, [""] * len(train_prompts), sizes["train_samples"], 10_000 + seed)
    train_records = records_of(train_prompts, responses, "train")
    save_step_records(run / "train_gold.jsonl", train_records)
    timer("sample_train", t0)

    t0 = time.perf_counter()
    unlabelled = [dataclasses.replace(r, labels=[], sources=[]) for r in train_records]
    summary = label_with_rollouts(unlabelled, sampler, lambda p, r, ref: answer_is_right(p, r), run / "rollouts",
                                  RolloutConfig(rollouts=sizes["rollouts"], estimate="soft", seed=seed,
                                                separator=" . ", chunk_size=64), resume=True, progress=False)
    timer("rollout_labels", t0)

    t0 = time.perf_counter()
    prm = train(policy, run / "rollouts" / "labels.jsonl", run / "prm", "steps", sizes, seed)
    orm = train(policy, run / "train_gold.jsonl", run / "orm", "outcome", sizes, seed)
    prm_gold = train(policy, run / "train_gold.jsonl", run / "prm_gold", "steps", sizes, seed) \
        if sizes["gold_prm"] else None
    timer("train_rms", t0)

    t0 = time.perf_counter()
    test_responses = sampler(test_prompts, [""] * len(test_prompts), sizes["test_samples"], 20_000 + seed)
    test = records_of(test_prompts, test_responses, "test")
    timer("sample_test", t0)

    t0 = time.perf_counter()
    from rewardgauge.rewards.best_of_n import SampleSet

    k = sizes["test_samples"]
    sets = [SampleSet(p, rs) for p, rs in zip(test_prompts, test_responses)]
    verdicts = [[judged(p, r) for r in rs] for p, rs in zip(test_prompts, test_responses)]
    answer = np.array([[v[0] for v in row] for row in verdicts])
    strict = np.array([[v[1] for v in row] for row in verdicts])
    answers = [[v[2] for v in row] for row in verdicts]
    models = {"prm": ProcessRewardModel.from_pretrained(prm, device="cpu"),
              "orm": ProcessRewardModel.from_pretrained(orm, device="cpu", aggregation="last")}
    if prm_gold is not None:
        models["prm_gold"] = ProcessRewardModel.from_pretrained(prm_gold, device="cpu")
    scores = {}
    for name, model in models.items():
        scores.update(method_scores(model, sets, name, AGGREGATIONS if name != "orm" else ()))
    ns = powers_of_two(k)
    bon = compare(scores, strict, answers, ns, sizes["draws"], seed)
    bon_answer = compare(scores, answer, answers, ns, sizes["draws"], seed)
    prm_metrics = evaluate_steps(models["prm"], test)
    gold_metrics = evaluate_steps(models["prm_gold"], test) if prm_gold is not None else None
    orm_metrics = evaluate_steps(models["orm"], test)
    timer("score_and_rerank", t0)
    right_answers = [r for r in test if r.outcome]
    blank = sum(not split_steps(r, " . ") for rs in test_responses for r in rs)

    t0 = time.perf_counter()
    rl = {}
    if with_rl:
        sources = {"orm": (orm, False), "prm": (prm, False), "prm_dense": (prm, True)}
        for name in sizes["rl_rewards"]:
            reward, dense = sources[name]
            rl[name] = rl_against(reward, dense, run, policy, root / "lab" / "rl_prompts.jsonl", test_prompts,
                                  sizes, seed)
    timer("rl", t0)
    return {"rl": rl,
        "seed": seed, "bon": bon, "bon_answer_only": bon_answer,
        "prm": {k: prm_metrics[k] for k in ("step_accuracy", "step_f1", "step_auroc", "earliest_error_f1",
                                            "acc_erroneous", "acc_correct", "outcome_auroc")},
        "prm_gold": {k: gold_metrics[k] if gold_metrics else None
                     for k in ("step_f1", "earliest_error_f1", "outcome_auroc")},
        "orm": {"outcome_auroc": orm_metrics["outcome_auroc"], "outcome_accuracy": orm_metrics["outcome_accuracy"]},
        "rollout_labels": summary,
        "policy": {"answer_right": float(answer.mean()), "strict_right": float(strict.mean()),
                   "blank_responses": blank / answer.size,
                   "wrong_step_among_right_answers": (sum(not all(r.labels) for r in right_answers)
                                                      / max(1, len(right_answers)))},
    }


def rl_summary(per_seed: list[dict]) -> dict:
    """Before (the SFT policy's held-out samples) and after RL against each reward, mean over the seeds with RL."""
    with_rl = [s for s in per_seed if s["rl"]]
    if not with_rl:
        return {}
    keys = ("answer_right", "strict_right", "wrong_step_among_right_answers")
    out = {"seeds": [s["seed"] for s in with_rl],
           "before": {k: round(float(np.mean([s["policy"][k] for s in with_rl])), 4) for k in keys}}
    for name in with_rl[0]["rl"]:
        out["after_" + name] = {k: round(float(np.mean([s["rl"][name][k] for s in with_rl])), 4)
                                for k in keys + ("gold_first_step", "gold_last_step")}
    return out


def mean_curves(per_seed: list[dict], key: str) -> dict:
    """method -> {"N": accuracy averaged over seeds} (keys are N as text: JSON)."""
    curves = {**per_seed[0][key]["methods"], "oracle": per_seed[0][key]["oracle"]}

    def at(s, m, n):
        return s[key]["oracle"][n] if m == "oracle" else s[key]["methods"][m][n]
    return {m: {str(n): round(float(np.mean([at(s, m, n) for s in per_seed])), 4) for n in curves[m]} for m in curves}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller everything (a few minutes on 2 CPU cores)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (at least 3 for the claim)")
    parser.add_argument("--out", default=None, help="work folder (default runs/bench_prm[_quick]); reused")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # on a shared 2-core machine two OpenMP threads stall each other (see tests)
    sizes = QUICK if args.quick else FULL
    root = Path(args.out or ("runs/bench_prm_quick" if args.quick else "runs/bench_prm"))
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    timer = Timer({})
    start = time.perf_counter()
    train_prompts, test_prompts, policy = lab_and_policy(root, sizes, timer)
    per_seed = []
    for seed in seeds:
        per_seed.append(run_seed(seed, root, policy, train_prompts, test_prompts, sizes, timer,
                                 with_rl=len(per_seed) < sizes["rl_seeds"]))
        print(f"seed {seed} done after {time.perf_counter() - start:.0f} s", file=sys.stderr)

    def mean(path):
        values = [s[path[0]][path[1]] for s in per_seed if s[path[0]][path[1]] is not None]
        return round(float(np.mean(values)), 4) if values else None

    result = {
        "bench": "prm_vs_orm", "quick": args.quick, "seeds": seeds, "sizes": sizes,
        "train_prompts": len(train_prompts), "test_prompts": len(test_prompts), "k": sizes["test_samples"],
        "criterion": "a solution is right when its answer and every step are right (lab gold)",
        "bon": mean_curves(per_seed, "bon"), "bon_answer_only": mean_curves(per_seed, "bon_answer_only"),
        "random": round(float(np.mean([s["bon"]["random"] for s in per_seed])), 4),
        "prm_step_f1": mean(("prm", "step_f1")), "prm_earliest_error_f1": mean(("prm", "earliest_error_f1")),
        "prm_step_accuracy": mean(("prm", "step_accuracy")), "prm_step_auroc": mean(("prm", "step_auroc")),
        "prm_gold_step_f1": mean(("prm_gold", "step_f1")),
        "prm_gold_earliest_error_f1": mean(("prm_gold", "earliest_error_f1")),
        "orm_outcome_auroc": mean(("orm", "outcome_auroc")),
        "policy_answer_right": mean(("policy", "answer_right")), "policy_strict_right": mean(("policy", "strict_right")),
        "policy_wrong_step_among_right_answers": mean(("policy", "wrong_step_among_right_answers")),
        "rl_stumbling": rl_summary(per_seed),
        "per_seed": [{k: v for k, v in s.items() if k not in ("bon", "bon_answer_only")}
                     | {"bon": {m: {str(n): round(a, 4) for n, a in c.items()} for m, c in s["bon"]["methods"].items()}}
                     for s in per_seed],
        "seconds": {**timer.seconds, "total": round(time.perf_counter() - start, 1)},
    }
    print(json.dumps(result))  # keys in insertion order: N ascending in every curve
    return 0


if __name__ == "__main__":
    sys.exit(main())
