"""KL budget: how far the policy has moved from the reference, against a budget the user sets.

Overoptimisation is a function of the distance travelled (Gao et al. 2022 fit the gold reward against
sqrt(KL)): a budget caps it. A warning at ``warn_fraction`` of the budget; at the budget, the configured
action (by default: raise the KL coefficient).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rewardgauge.monitor.alarms import AlarmPolicy
from rewardgauge.monitor.detectors.base import Detector, Finding, Trigger, alarm
from rewardgauge.monitor.rollouts import Rollouts


@dataclass
class KLBudgetConfig:
    enabled: bool = True
    metric: str = "kl_k1"           # the step metric holding the KL to the reference (per response, summed
                                    # over its tokens; k1 is the unbiased estimator of KL(policy || reference))
    budget: float | None = None     # None: report only
    warn_fraction: float = 0.8
    alarm: AlarmPolicy = field(default_factory=lambda: AlarmPolicy("critical", "raise_kl"))

    def validate(self) -> None:
        if self.budget is not None and not (math.isfinite(self.budget) and self.budget > 0):
            raise ValueError(f"kl: budget must be a positive number, got {self.budget}")
        if not 0 < self.warn_fraction <= 1:
            raise ValueError(f"kl: warn_fraction must be in (0, 1], got {self.warn_fraction}")
        self.alarm.validate()


class KLBudgetDetector(Detector):
    name = "kl"

    def __init__(self, config: KLBudgetConfig | None = None):
        self.config = config or KLBudgetConfig()
        self.warn, self.over = Trigger(), Trigger()

    def observe(self, step: int, rollouts: Rollouts) -> Finding:
        cfg = self.config
        kl = rollouts.metric(cfg.metric)
        if kl is None:
            return Finding()
        finding = Finding({"kl": kl})
        if cfg.budget is None:
            return finding
        finding.metrics["budget_used"] = kl / cfg.budget
        over = self.over.update(step, kl >= cfg.budget)
        near = self.warn.update(step, kl >= cfg.warn_fraction * cfg.budget)
        if over:
            finding.alarms.append(alarm(cfg.alarm, step, self.name,
                                        f"KL {kl:.3f} reached the budget {cfg.budget:g}", metric=cfg.metric,
                                        value=kl, threshold=cfg.budget, trigger=self.over))
        elif near and kl < cfg.budget:
            finding.alarms.append(alarm(AlarmPolicy("warning", "warn"), step, self.name,
                                        f"KL {kl:.3f} is {kl / cfg.budget:.0%} of the budget {cfg.budget:g}",
                                        metric=cfg.metric, value=kl, threshold=cfg.warn_fraction * cfg.budget))
        return finding

    def memory(self) -> dict[str, Any]:
        return {"warn": self.warn, "over": self.over}
