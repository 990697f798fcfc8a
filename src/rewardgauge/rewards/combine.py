"""A weighted sum of reward sources as one RewardModel: r = Σ_i w_i r_i.

Each component is scored on the whole batch (it batches itself), and every part of every component is kept
in ``aspects`` under the component's name: ``NAME`` (its reward), ``NAME/member_k`` (an ensemble's members),
``NAME/ASPECT`` (its own aspects), so a run logs what each part of the reward did.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rewardgauge.data.records import Prompt
from rewardgauge.rewards.base import Meta, RewardModel, Scores


class WeightedSumReward(RewardModel):
    name = "sum"
    batch_size = None  # one score_batch per score(); each component batches on its own

    def __init__(self, components: Sequence[tuple[str, RewardModel, float]]):
        names = [name for name, _, _ in components]
        if not components or len(set(names)) != len(names):
            raise ValueError(f"need at least one component and distinct names, got {names}")
        self.components = list(components)

    def score_batch(self, prompts: list[Prompt], responses: list[str], meta: list[Meta]) -> Scores:
        total = torch.zeros(len(prompts))
        aspects: dict[str, torch.Tensor] = {}
        for name, model, weight in self.components:
            scores = model.score(prompts, responses, meta=meta).to("cpu")
            total = total + weight * scores.reward.float()
            aspects[name] = scores.reward.float()
            if scores.members is not None:
                aspects.update({f"{name}/member_{k}": row.float() for k, row in enumerate(scores.members)})
            for aspect, values in (scores.aspects or {}).items():
                aspects[f"{name}/{aspect}"] = values.float()
        return Scores(reward=total, aspects=aspects)
