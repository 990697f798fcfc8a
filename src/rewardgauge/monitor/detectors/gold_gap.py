"""The proxy-gold gap, where a reward trusted more than the proxy exists (the lab's gold reward, a stronger
judge): the proxy keeps rising while the trusted reward has peaked and fallen. This is overoptimisation
itself (Gao et al. 2022), seen as it happens, not a forecast of it: the detector the others are measured
against.

Each step: the mean proxy and trusted reward, both smoothed over ``window`` steps, and their standardised gap
(each reward's rise over its first steps, in its within-step std there). Alarm when the smoothed trusted
reward has lost ``min_drop`` of its gain from the first steps to its peak, by more than ``z`` standard errors,
while the proxy is at least where it was at that peak; the alarm's roll back goes to the peak.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rewardgauge.monitor.alarms import AlarmPolicy
from rewardgauge.monitor.detectors.base import Detector, Finding, History, Trigger, alarm, mean
from rewardgauge.monitor.rollouts import Rollouts
from rewardgauge.rewards.base import RewardModel


@dataclass
class GoldGapConfig:
    enabled: bool = True
    gold: str = "auto"          # a reward spec trusted more than the proxy; auto: the run's own gold, if it has one
    window: int = 3             # steps smoothed
    baseline_steps: int = 3
    min_drop: float = 0.2       # share of the gain (first steps -> peak) lost...
    z: float = 3.0              # ...by more than this many standard errors of the smoothed means
    patience: int = 1
    alarm: AlarmPolicy = field(default_factory=lambda: AlarmPolicy("critical", "rollback"))

    def validate(self) -> None:
        if min(self.window, self.baseline_steps, self.patience) < 1 or self.min_drop < 0 or self.z < 0:
            raise ValueError("gold_gap: window, baseline_steps and patience must be >= 1; min_drop and z >= 0")
        self.alarm.validate()


class GoldGapDetector(Detector):
    name = "gold_gap"

    def __init__(self, gold: RewardModel | None = None, config: GoldGapConfig | None = None):
        self.gold, self.config = gold, config or GoldGapConfig()
        self.history = History()
        self.trigger = Trigger(self.config.patience)

    def observe(self, step: int, rollouts: Rollouts) -> Finding:
        cfg = self.config
        gold = rollouts.gold
        if self.gold is not None:
            gold = self.gold.score(rollouts.prompts, rollouts.responses).reward.float().cpu()
        if gold is None:
            return Finding()
        proxy = rollouts.reward
        n = max(1, len(gold))
        self.history.add(step, gold=float(gold.mean()), proxy=float(proxy.mean()),
                         gold_sd=float(gold.std()) if n > 1 else 0.0, proxy_sd=float(proxy.std()) if n > 1 else 0.0,
                         gold_se2=(float(gold.var()) / n) if n > 1 else 0.0)
        h = self.history
        gold_s = self._smoothed("gold")
        proxy_s = self._smoothed("proxy")
        se = [math.sqrt(sum(h.series["gold_se2"][max(0, i - cfg.window + 1):i + 1])) / min(cfg.window, i + 1)
              for i in range(len(h))]
        g0, p0 = h.baseline("gold", cfg.baseline_steps), h.baseline("proxy", cfg.baseline_steps)
        gsd, psd = h.baseline("gold_sd", cfg.baseline_steps), h.baseline("proxy_sd", cfg.baseline_steps)
        metrics = {"gold_mean": h.series["gold"][-1], "proxy_mean": h.series["proxy"][-1],
                   "gold_smoothed": gold_s[-1], "proxy_smoothed": proxy_s[-1]}
        finding = Finding(metrics)
        if g0 is None:
            return finding
        if gsd and psd:
            metrics["gap"] = (proxy_s[-1] - p0) / psd - (gold_s[-1] - g0) / gsd
        peak = max(range(len(h)), key=lambda i: gold_s[i])
        gain = gold_s[peak] - g0
        drop = gold_s[peak] - gold_s[-1]
        metrics.update({"gold_gain": gain, "gold_drop": drop, "gold_peak_step": float(h.steps[peak])})
        falling = (peak < len(h) - 1 and drop >= cfg.min_drop * max(gain, 0.0)
                   and drop > cfg.z * math.sqrt(se[peak] ** 2 + se[-1] ** 2)
                   and proxy_s[-1] >= proxy_s[peak])
        if self.trigger.update(step, falling):
            finding.alarms.append(alarm(
                cfg.alarm, step, self.name,
                f"the trusted reward fell {drop:.3f} from its peak at step {h.steps[peak]} ({drop / gain:.0%} of its "
                f"gain) while the proxy rose {proxy_s[-1] - proxy_s[peak]:+.3f}" if gain > 0 else
                f"the trusted reward fell {drop:.3f} from its peak at step {h.steps[peak]} while the proxy rose "
                f"{proxy_s[-1] - proxy_s[peak]:+.3f}", metric="gold_drop", value=drop,
                threshold=cfg.min_drop * max(gain, 0.0), rollback_to=h.steps[peak]))
        return finding

    def _smoothed(self, name: str) -> list[float]:
        values, w = self.history.series[name], self.config.window
        return [mean(values[max(0, i - w + 1):i + 1]) for i in range(len(values))]

    def memory(self) -> dict[str, Any]:
        return {"history": self.history, "trigger": self.trigger}
