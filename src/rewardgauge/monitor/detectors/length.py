"""Length exploitation: the policy grows its answers because the reward pays for length.

Over a window of the last ``window`` steps (samples pooled): the rank correlation of reward with length, its
trend (the slope of the per-step correlation over the window), a hockey-stick fit of reward against length
(flat, then rising past a knee: the article's picture of a reward model that pays for length), and the growth
of the mean length against the first steps. Alarm when the answers have grown by ``max_growth`` and the
reward still rises with length (correlation >= ``min_corr``): the reward is paying for the growth.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from rewardgauge.monitor.alarms import AlarmPolicy
from rewardgauge.monitor.detectors.base import Detector, Finding, History, Trigger, alarm, mean
from rewardgauge.monitor.rollouts import Rollouts
from rewardgauge.stats import hockey_stick, slope, spearman


@dataclass
class LengthConfig:
    enabled: bool = True
    window: int = 5             # steps pooled for the correlation and the fit
    baseline_steps: int = 3     # the first observations: the lengths the growth is measured against
    max_growth: float = 0.25    # alarm when the mean length grew by this share of the baseline...
    min_corr: float = 0.3       # ...and reward still rises with length (Spearman over the window)
    patience: int = 2
    alarm: AlarmPolicy = field(default_factory=AlarmPolicy)

    def validate(self) -> None:
        if self.window < 1 or self.baseline_steps < 1 or self.patience < 1:
            raise ValueError("length: window, baseline_steps and patience must be >= 1")
        self.alarm.validate()


class LengthDetector(Detector):
    name = "length"

    def __init__(self, config: LengthConfig | None = None):
        self.config = config or LengthConfig()
        self.history = History()
        self.pool: deque[tuple[list[float], list[float]]] = deque(maxlen=self.config.window)
        self.trigger = Trigger(self.config.patience)

    def observe(self, step: int, rollouts: Rollouts) -> Finding:
        cfg = self.config
        lengths = [float(x) for x in rollouts.lengths]
        rewards = rollouts.reward.tolist()
        self.pool.append((lengths, rewards))
        all_lengths = [x for ls, _ in self.pool for x in ls]
        all_rewards = [r for _, rs in self.pool for r in rs]
        corr = spearman(all_lengths, all_rewards)
        self.history.add(step, length_mean=mean(lengths), step_corr=spearman(lengths, rewards))
        recent = self.history.last("step_corr", cfg.window)
        trend = slope(self.history.steps[-len(recent):], recent) if len(recent) >= 2 else float("nan")
        base = self.history.baseline("length_mean", cfg.baseline_steps)
        window_length = mean(self.history.last("length_mean", cfg.window))
        growth = window_length / base - 1 if base else float("nan")
        metrics = {"length_mean": mean(lengths), "reward_length_corr": corr, "corr_trend": trend,
                   "length_growth": growth}
        fit = hockey_stick(all_lengths, all_rewards)
        if fit is not None:
            metrics.update({"knee": fit.knee, "slope_before_knee": fit.slope_before,
                            "slope_after_knee": fit.slope_after, "hockey_stick_gain": fit.gain})
        finding = Finding(metrics)
        exploiting = base is not None and growth >= cfg.max_growth and corr >= cfg.min_corr
        if self.trigger.update(step, exploiting):
            finding.alarms.append(alarm(
                cfg.alarm, step, self.name,
                f"responses grew {100 * growth:.0f}% over the first steps (mean {window_length:.1f} vs {base:.1f} "
                f"tokens) and reward rises with length (Spearman {corr:.2f} over {len(self.pool)} steps)",
                metric="length_growth", value=growth, threshold=cfg.max_growth, trigger=self.trigger))
        return finding

    def memory(self) -> dict[str, Any]:
        return {"history": self.history, "trigger": self.trigger}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "pool": [list(p) for p in self.pool]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.pool.clear()
        self.pool.extend((list(ls), list(rs)) for ls, rs in state.get("pool", []))
