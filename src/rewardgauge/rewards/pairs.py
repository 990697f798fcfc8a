"""Scoring preference pairs: both sides of every pair in one ``score`` call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rewardgauge.data.records import PreferencePair
from rewardgauge.rewards.base import RewardModel, Scores


@dataclass
class PairScores:
    chosen: Scores
    rejected: Scores

    @property
    def margins(self) -> torch.Tensor:
        """r(chosen) - r(rejected) per pair."""
        return self.chosen.reward - self.rejected.reward


def score_pairs(rm: RewardModel, pairs: Sequence[PreferencePair]) -> PairScores:
    """Scores of each pair's chosen and rejected response. Both sides go in one call, so a model that sorts
    by length batches them together (less padding than two calls) and a batch is never half empty."""
    n = len(pairs)
    prompts = [p.prompt for p in pairs]
    scores = rm.score(prompts + prompts, [p.chosen for p in pairs] + [p.rejected for p in pairs])
    return PairScores(chosen=scores.select(range(n)), rejected=scores.select(range(n, 2 * n)))
