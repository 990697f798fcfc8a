"""A process reward model evaluated like a classifier of steps, and by ProcessBench's earliest-error task.

- steps: each labelled step's score P(correct) >= threshold against its label (a soft label >= 0.5 counts
  as correct); accuracy, and precision / recall / F1 of *finding incorrect steps* (the rare class that
  matters), and the AUROC of the score for correctness.
- earliest error (Zheng et al. 2024, ProcessBench): the predicted earliest error is the first step scored
  below the threshold (-1 if none). acc_erroneous = share of solutions with an error whose earliest error is
  found exactly; acc_correct = share of all-correct solutions with no step flagged; F1 = their harmonic mean.
- outcome: the aggregate reward >= threshold against the record's ``outcome`` (final answer right?):
  accuracy and AUROC (for outcome verifiers, and for PRMs used as one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from rewardgauge.data.steps import StepRecord, first_error, is_correct
from rewardgauge.rewards.aggregators import aggregate_steps
from rewardgauge.rewards.evaluation import auroc
from rewardgauge.rewards.process import ProcessRewardModel


def _ratio(a: float, b: float) -> float | None:
    return None if b == 0 else a / b


def harmonic_mean(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)


def predicted_first_error(scores: torch.Tensor, threshold: float = 0.5) -> int:
    """The first step scored below ``threshold``; -1 when none is (cut-off steps, NaN, are not flagged)."""
    flagged = (scores < threshold).nonzero()
    return int(flagged[0]) if len(flagged) else -1


def step_metrics(records: Sequence[StepRecord], scores: Sequence[torch.Tensor], threshold: float = 0.5) -> dict:
    truth, predicted, values = [], [], []
    for record, s in zip(records, scores):
        for label, value in zip(record.labels, s.tolist()):
            if label is None or math.isnan(value):
                continue
            truth.append(is_correct(label))
            predicted.append(value >= threshold)
            values.append(value)
    n = len(truth)
    hits = sum(t == p for t, p in zip(truth, predicted))
    tp = sum((not t) and (not p) for t, p in zip(truth, predicted))  # an incorrect step flagged
    flagged = sum(not p for p in predicted)
    errors = sum(not t for t in truth)
    precision, recall = _ratio(tp, flagged), _ratio(tp, errors)
    return {"steps": n, "incorrect_steps": errors, "step_accuracy": _ratio(hits, n),
            "step_precision": precision, "step_recall": recall,
            "step_f1": _ratio(2 * tp, flagged + errors),  # = 2PR / (P + R)
            "step_auroc": auroc(torch.tensor(values), torch.tensor(truth)) if n else None}


def earliest_error_metrics(records: Sequence[StepRecord], scores: Sequence[torch.Tensor],
                           threshold: float = 0.5) -> dict:
    wrong_hits = wrong = right_hits = right = 0
    for record, s in zip(records, scores):
        target = first_error(record.labels)
        if target is None:
            continue
        found = predicted_first_error(s, threshold)
        if target >= 0:
            wrong += 1
            wrong_hits += found == target
        else:
            right += 1
            right_hits += found == -1
    a, b = _ratio(wrong_hits, wrong), _ratio(right_hits, right)
    return {"erroneous_solutions": wrong, "correct_solutions": right, "acc_erroneous": a, "acc_correct": b,
            "earliest_error_f1": harmonic_mean(a, b)}


def outcome_metrics(records: Sequence[StepRecord], rewards: torch.Tensor, threshold: float = 0.5) -> dict:
    keep = [i for i, r in enumerate(records) if r.outcome is not None]
    if not keep:
        return {"outcomes": 0, "outcome_accuracy": None, "outcome_auroc": None}
    truth = torch.tensor([records[i].outcome for i in keep])
    values = rewards[keep]
    return {"outcomes": len(keep), "outcome_accuracy": ((values >= threshold) == truth).float().mean().item(),
            "outcome_auroc": auroc(values, truth)}


def evaluate_steps(prm: ProcessRewardModel, records: Sequence[StepRecord], threshold: float = 0.5) -> dict:
    """Step, earliest-error and outcome metrics of ``prm`` on ``records`` (None where the data has no labels)."""
    scores = prm.step_scores([r.prompt for r in records], [r.steps for r in records])
    rewards = aggregate_steps([s[~s.isnan()] for s in scores], prm.aggregation)
    return {"aggregation": prm.aggregation, "threshold": threshold, "records": len(records),
            **step_metrics(records, scores, threshold), **earliest_error_metrics(records, scores, threshold),
            **outcome_metrics(records, rewards, threshold)}
