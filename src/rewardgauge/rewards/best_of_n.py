"""Best-of-N reranking: from K samples per prompt, estimate the accuracy of picking the best of N (N <= K) by a
reward model, or by majority vote over final answers, as Lightman et al. (2023, "Let's Verify Step by Step",
§3) do: draw many subsets of N samples per prompt, pick within each, average whether the pick is right.

Every method sees the same subsets (a paired comparison). A reward model picks its highest-scoring sample
(ties: the first drawn). Majority vote picks the most common final answer among the N (samples without an
answer do not vote; a tie goes to the answer drawn first) and, from the samples giving it, the first drawn.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewardgauge.data.io import iter_rows
from rewardgauge.data.records import Prompt
from rewardgauge.data.validate import RecordChecker, json_type, show
from rewardgauge.errors import InputError

SAMPLE_FIELDS = ("prompt", "responses", "reference", "id", "meta")


@dataclass
class SampleSet:
    """K sampled responses to one prompt (and the right answer where known)."""

    prompt: Prompt
    responses: list[str]
    reference: str | None = None
    id: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"prompt": self.prompt, "responses": self.responses}
        if self.reference is not None:
            out["reference"] = self.reference
        if self.id:
            out["id"] = self.id
        if self.meta:
            out["meta"] = self.meta
        return out


def load_samples(path: str | Path) -> list[SampleSet]:
    """``{"prompt", "responses": [...], "reference"?, "id"?, "meta"?}`` per line; every prompt needs the same
    number of responses (K). Bad input raises InputError naming file, line and field."""
    out, k = [], None
    for line, row in iter_rows(path):
        check = RecordChecker(path, line, None)
        check.unknown_keys(row, SAMPLE_FIELDS)
        responses = row.get("responses")
        if not isinstance(responses, list) or not responses:
            raise check.fail("responses", f"must be a non-empty list of texts, got {json_type(responses)} "
                                          f"{show(responses)}")
        for i, r in enumerate(responses):
            if not isinstance(r, str):
                raise check.fail(f"responses[{i}]", f"must be a string, got {json_type(r)} {show(r)}")
        if k is not None and len(responses) != k:
            raise check.fail("responses", f"has {len(responses)} responses; earlier prompts have {k}")
        k = len(responses)
        reference = row.get("reference")
        if reference is not None and not isinstance(reference, (str, int, float)):
            raise check.fail("reference", f"must be a string or a number, got {json_type(reference)}")
        out.append(SampleSet(check.prompt(row), list(responses), None if reference is None else str(reference),
                             check.ident(row), check.meta(row)))
    if not out:
        raise InputError("no samples", path=path)
    return out


def draw_subsets(n_prompts: int, k: int, ns: Sequence[int], draws: int, seed: int) -> dict[int, np.ndarray]:
    """For each N: [prompts, draws, N] sample indices, each row a random N-subset of range(k) in random order."""
    rng = np.random.default_rng(seed)
    out = {}
    for n in ns:
        if not 1 <= n <= k:
            raise ValueError(f"N must be in 1..{k}, got {n}")
        keys = rng.random((n_prompts, draws, k))
        out[n] = np.argsort(keys, axis=-1)[..., :n]
    return out


def rerank_accuracy(scores: np.ndarray, correct: np.ndarray, subsets: dict[int, np.ndarray]) -> dict[int, float]:
    """Accuracy of the top-scored sample of each subset; ``scores`` and ``correct`` are [prompts, K]."""
    out = {}
    for n, idx in subsets.items():
        picked_scores = np.take_along_axis(scores[:, None, :], idx, axis=-1)  # [P, D, N]
        best = np.take_along_axis(idx, picked_scores.argmax(-1)[..., None], axis=-1)[..., 0]  # first max wins
        out[n] = float(np.take_along_axis(correct, best, axis=-1).mean())
    return out


def majority_vote_accuracy(answers: Sequence[Sequence[str | None]], correct: np.ndarray,
                           subsets: dict[int, np.ndarray]) -> dict[int, float]:
    """Accuracy of majority vote over final answers within each subset (see the module docstring)."""
    out = {}
    for n, idx in subsets.items():
        hits = 0
        for p, rows in enumerate(idx):
            for row in rows:
                votes = Counter(answers[p][j] for j in row if answers[p][j] is not None)
                if votes:
                    top = max(votes.values())
                    winner = next(answers[p][j] for j in row if votes.get(answers[p][j]) == top)
                    pick = next(j for j in row if answers[p][j] == winner)
                else:
                    pick = row[0]
                hits += bool(correct[p, pick])
        out[n] = hits / idx.shape[0] / idx.shape[1]
    return out


def powers_of_two(k: int) -> list[int]:
    ns, n = [], 1
    while n <= k:
        ns.append(n)
        n *= 2
    return ns


def method_scores(rm, sample_sets: Sequence[SampleSet], name: str,
                  aggregations: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """[prompts, K] scores of every sample by ``rm``, under ``name``; a process reward model gives one entry per
    aggregation, ``name:how`` (its step scores computed once)."""
    from rewardgauge.rewards.aggregators import aggregate_steps

    k = len(sample_sets[0].responses)
    prompts = [s.prompt for s in sample_sets for _ in s.responses]
    responses = [r for s in sample_sets for r in s.responses]
    scores = rm.score(prompts, responses)
    if scores.steps is not None and aggregations:
        steps = [x[~x.isnan()] for x in scores.steps]
        return {f"{name}:{how}": aggregate_steps(steps, how).numpy().reshape(-1, k) for how in aggregations}
    return {name: scores.reward.float().numpy().reshape(-1, k)}


def compare(scores: dict[str, np.ndarray], correct: np.ndarray, answers: Sequence[Sequence[str | None]] | None,
            ns: Sequence[int], draws: int, seed: int) -> dict:
    """Best-of-N accuracy per method and N on the same subsets, with majority vote (when ``answers`` are
    given) and two references: ``random`` (the mean accuracy of one sample) and ``oracle`` (any of the N right)."""
    subsets = draw_subsets(correct.shape[0], correct.shape[1], ns, draws, seed)
    methods = {name: rerank_accuracy(s, correct, subsets) for name, s in scores.items()}
    if answers is not None:
        methods["majority"] = majority_vote_accuracy(answers, correct, subsets)
    oracle = {n: float(np.take_along_axis(correct[:, None, :], idx, axis=-1).any(-1).mean()) for n, idx in subsets.items()}
    return {"prompts": int(correct.shape[0]), "k": int(correct.shape[1]), "ns": list(ns), "draws": draws,
            "random": float(correct.mean()), "oracle": oracle, "methods": methods}
