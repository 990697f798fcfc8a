"""What the monitor sees of one RL step: the policy's samples and what the reward said about them."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from rewardgauge.audit.counterfactual import question_of
from rewardgauge.data.records import Prompt
from rewardgauge.rewards.base import Scores


@dataclass
class Rollouts:
    """N samples of one step.

    prompts, responses: one entry per sample (a GRPO group repeats its prompt).
    reward:   [N] the reward RL optimised (the proxy).
    scores:   the proxy's full Scores where known (ensemble members, aspects, uncertainty).
    lengths:  each response's length in the policy's tokens; whitespace-separated words where not given.
    gold:     [N] a trusted reward of the same samples where the run computes one (the lab's gold reward).
    metrics:  the step's other numbers (KL estimates, the KL coefficient, entropy...), by their metrics.jsonl
              names.
    """

    prompts: Sequence[Prompt]
    responses: Sequence[str]
    reward: torch.Tensor
    scores: Scores | None = None
    lengths: Sequence[int] | None = None
    gold: torch.Tensor | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.responses)
        self.reward = torch.as_tensor(self.reward, dtype=torch.float32).detach().cpu().reshape(-1)
        if self.gold is not None:
            self.gold = torch.as_tensor(self.gold, dtype=torch.float32).detach().cpu().reshape(-1)
        if self.lengths is None:
            self.lengths = [len(r.split()) for r in self.responses]
        sizes = {"prompts": len(self.prompts), "reward": len(self.reward), "lengths": len(self.lengths),
                 **({} if self.gold is None else {"gold": len(self.gold)}),
                 **({} if self.scores is None else {"scores": len(self.scores)})}
        wrong = {k: v for k, v in sizes.items() if v != n}
        if wrong:
            raise ValueError(f"Rollouts of {n} responses with {wrong}")

    def __len__(self) -> int:
        return len(self.responses)

    @property
    def questions(self) -> list[str]:
        """Each sample's question: the prompt, or its last user message."""
        return [question_of(p) for p in self.prompts]

    def metric(self, name: str) -> float | None:
        """A finite step metric by name, or None."""
        value = self.metrics.get(name)
        if value is None:
            return None
        value = float(value)
        return value if math.isfinite(value) else None


# ``sampler(prompts, n)``: n fresh responses of the current policy to each prompt (the RL loop or a trainer
# integration gives one); detectors that probe the policy on prompts of their own use it.
Sampler = Callable[[Sequence[Prompt], int], list[list[str]]]
