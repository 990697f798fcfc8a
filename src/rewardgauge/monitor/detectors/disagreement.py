"""Ensemble disagreement on the policy's samples: members trained on different data agree where the data
was, and drift apart where the policy has gone beyond it (the uncertainty that conservative ensembles
penalise; Coste et al. 2023, Eisenstein et al. 2023).

The members' std per sample, averaged over the step, against its mean over the first steps. The members come
from the proxy's own Scores (an ensemble as the RL reward) or from a separate ensemble that scores the
samples. Alarm when the disagreement has grown by the factor ``max_ratio``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rewardgauge.monitor.alarms import AlarmPolicy
from rewardgauge.monitor.detectors.base import Detector, Finding, History, Trigger, alarm
from rewardgauge.monitor.rollouts import Rollouts
from rewardgauge.rewards.base import RewardModel


@dataclass
class DisagreementConfig:
    enabled: bool = True
    ensemble: str | None = None     # an ensemble folder that scores the samples (default: the proxy's members)
    baseline_steps: int = 3
    max_ratio: float = 1.5          # alarm when the members' mean std grew by this factor over the baseline
    patience: int = 2
    alarm: AlarmPolicy = field(default_factory=AlarmPolicy)

    def validate(self) -> None:
        if self.baseline_steps < 1 or self.patience < 1 or self.max_ratio <= 1:
            raise ValueError("disagreement: baseline_steps and patience must be >= 1 and max_ratio > 1")
        self.alarm.validate()


class DisagreementDetector(Detector):
    name = "disagreement"

    def __init__(self, ensemble: RewardModel | None = None, config: DisagreementConfig | None = None):
        self.ensemble = ensemble
        self.config = config or DisagreementConfig()
        self.history = History()
        self.trigger = Trigger(self.config.patience)

    def observe(self, step: int, rollouts: Rollouts) -> Finding:
        cfg = self.config
        scores = rollouts.scores if self.ensemble is None else self.ensemble.score(rollouts.prompts,
                                                                                  rollouts.responses)
        if scores is None or scores.members is None or scores.members.shape[0] < 2:
            return Finding()
        members = scores.members.float().cpu()
        spread = float(members.std(dim=0).mean())
        # The share of samples the members disagree about: some member scores it above its own mean of the
        # step and another below (scale-free, so members on different scales compare).
        centred = members - members.mean(dim=1, keepdim=True)
        split = float(((centred > 0).any(dim=0) & (centred < 0).any(dim=0)).float().mean())
        self.history.add(step, spread=spread)
        base = self.history.baseline("spread", cfg.baseline_steps)
        ratio = spread / base if base and base > 0 else math.nan
        finding = Finding({"member_std": spread, "ratio": ratio, "sign_split": split})
        if self.trigger.update(step, math.isfinite(ratio) and ratio >= cfg.max_ratio):
            finding.alarms.append(alarm(
                cfg.alarm, step, self.name,
                f"ensemble members disagree {ratio:.2f}x as much as in the first steps (mean std {spread:.3f} vs "
                f"{base:.3f}): the policy's samples are leaving the reward models' data", metric="ratio",
                value=ratio, threshold=cfg.max_ratio, trigger=self.trigger))
        return finding

    def memory(self) -> dict[str, Any]:
        return {"history": self.history, "trigger": self.trigger}
