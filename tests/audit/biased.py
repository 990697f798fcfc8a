"""Reward models whose bias is known, for the audit's tests."""

import torch

from rewardgauge.rewards.base import RewardModel, Scores


class Paying(RewardModel):
    """reward = pay(response): pays for exactly what ``pay`` counts."""

    def __init__(self, pay):
        self.pay = pay

    def score_batch(self, prompts, responses, meta=None):
        return Scores(reward=torch.tensor([float(self.pay(r)) for r in responses]))
