"""Reward models whose bias is known, for the audit's tests."""

import hashlib
import re

import torch

from rewardgauge.lab.gold import analyse
from rewardgauge.rewards.base import RewardModel, Scores


class Paying(RewardModel):
    """reward = pay(response): pays for exactly what ``pay`` counts."""

    def __init__(self, pay):
        self.pay = pay

    def score_batch(self, prompts, responses, meta=None):
        return Scores(reward=torch.tensor([float(self.pay(r)) for r in responses]))


def noise(text: str) -> float:
    """A fixed pseudo-random number in [-1, 1] for each text: the same text always gets the same noise."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF * 2 - 1


def answer_number(response: str) -> int:
    """The k of "Answer k." in a response: the content the noisy reward models pay for."""
    return int(re.search(r"Answer (\d+)\.", response).group(1))


class GoldPlus(RewardModel):
    """The lab's gold reward plus a bonus for saying "yes" to the user's claim and one per filler token: the
    lab annotators' agreement bias, and a blindness to what filler costs (bonus 0.04 cancels the gold's cost)."""

    def __init__(self, agree_bonus: float = 0.0, filler_bonus: float = 0.0):
        self.agree_bonus, self.filler_bonus = agree_bonus, filler_bonus

    def score_batch(self, prompts, responses, meta=None):
        rewards = []
        for p, r in zip(prompts, responses):
            a = analyse(p, r)
            rewards.append(a.utility + self.agree_bonus * a.agrees + self.filler_bonus * a.filler_tokens
                           + 0.01 * noise(r))
        return Scores(reward=torch.tensor(rewards))
