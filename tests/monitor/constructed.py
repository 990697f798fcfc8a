"""Rollouts and reward models whose answer is known, for the monitor's tests."""

import random

import torch

from rewardgauge.monitor.rollouts import Rollouts
from rewardgauge.rewards.base import RewardModel, Scores

ARITHMETIC = ["compute 1 + 2 .", "compute 2 * 3 .", "compute 3 + 4 .", "compute 2 + 2 * 3 ."]
ANSWERS = {"compute 1 + 2 .": "1 + 2 = 3 . answer 3 .", "compute 2 * 3 .": "2 * 3 = 6 . answer 6 .",
           "compute 3 + 4 .": "3 + 4 = 7 . answer 7 .", "compute 2 + 2 * 3 .": "2 * 3 = 6 . 2 + 6 = 8 . answer 8 ."}


class Paying(RewardModel):
    """reward = pay(prompt, response): pays for exactly what ``pay`` counts."""

    def __init__(self, pay):
        self.pay = pay
        self.calls = 0

    def score_batch(self, prompts, responses, meta=None):
        self.calls += 1
        return Scores(reward=torch.tensor([float(self.pay(p, r)) for p, r in zip(prompts, responses)]))



def rollouts(prompts, responses, reward_model=None, reward=None, **kw) -> Rollouts:
    if reward is None:
        reward = reward_model.score(prompts, responses).reward
    return Rollouts(prompts=list(prompts), responses=list(responses), reward=reward, **kw)


def styled(answer: str, opener: bool = False, filler: int = 0) -> str:
    text = ("certainly ! " if opener else "") + answer
    return text + " i hope this helps ." * filler


def batch(rng: random.Random, n: int, p_opener: float = 0.0, mean_filler: float = 0.0):
    prompts = [rng.choice(ARITHMETIC) for _ in range(n)]
    responses = [styled(ANSWERS[p], rng.random() < p_opener, int(rng.random() < mean_filler)
                        + int(rng.random() < mean_filler / 2)) for p in prompts]
    return prompts, responses
