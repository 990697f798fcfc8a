"""What every detector shares: the interface, a per-step history with a baseline, and a trigger with patience.

A detector watches one thing. ``observe(step, rollouts)`` returns the step's metrics (by stable names) and
any alarms. Most signals of reward hacking are changes, not levels (a reward model that pays for length pays
for it from the first step; what matters is the policy starting to collect), so detectors compare against a
baseline: the mean of their first ``baseline_steps`` observations. Everything a detector remembers is plain
JSON (``state_dict``), so a resumed run raises the alarms an uninterrupted one would.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rewardgauge.monitor.alarms import Alarm, AlarmPolicy
from rewardgauge.monitor.rollouts import Rollouts


@dataclass
class Finding:
    metrics: dict[str, float] = field(default_factory=dict)
    alarms: list[Alarm] = field(default_factory=list)


class Detector(abc.ABC):
    """One job: watch one signal of reward hacking."""

    name: str = "detector"

    @abc.abstractmethod
    def observe(self, step: int, rollouts: Rollouts) -> Finding:
        """This step's metrics and alarms."""

    def memory(self) -> dict[str, Any]:
        """The parts that hold what the detector remembers (each with ``state_dict``/``load_state_dict``)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """What the detector remembers, as JSON (saved with a checkpoint)."""
        return {name: part.state_dict() for name, part in self.memory().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()``'s result (a resumed run)."""
        for name, part in self.memory().items():
            part.load_state_dict(state.get(name, {}))


class History:
    """Per-step values of named series, with the steps they were observed at."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.series: dict[str, list[float]] = {}

    def add(self, step: int, **values: float) -> None:
        """Record one observation; every series gets a value (nan where missing), so they stay aligned."""
        self.steps.append(step)
        for name in set(self.series) | set(values):
            column = self.series.setdefault(name, [math.nan] * (len(self.steps) - 1))
            column.append(float(values.get(name, math.nan)))

    def __len__(self) -> int:
        return len(self.steps)

    def last(self, name: str, n: int) -> list[float]:
        return self.series.get(name, [])[-n:]

    def baseline(self, name: str, n: int) -> float | None:
        """The mean of the first ``n`` finite values, once there are ``n`` of them."""
        first = [v for v in self.series.get(name, []) if math.isfinite(v)][:n]
        return sum(first) / n if len(first) == n else None

    def state_dict(self) -> dict[str, Any]:
        return {"steps": list(self.steps), "series": {k: [_json(v) for v in vs] for k, vs in self.series.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = [int(s) for s in state.get("steps", [])]
        self.series = {k: [math.nan if v is None else float(v) for v in vs]
                       for k, vs in state.get("series", {}).items()}


def _json(v: float) -> float | None:
    return v if math.isfinite(v) else None


class Trigger:
    """Raises an alarm when a condition has held for ``patience`` consecutive observations, once per episode:
    it re-arms only after the condition has cleared. ``onset`` is the first step of the current episode, so a
    roll back can go to the step before it."""

    def __init__(self, patience: int = 1):
        self.patience = max(1, patience)
        self.count, self.fired, self.onset = 0, False, None
        self.last_clear: int | None = None

    def update(self, step: int, condition: bool) -> bool:
        """True on the observation where the condition completes its ``patience``."""
        if not condition:
            self.count, self.fired, self.onset, self.last_clear = 0, False, None, step
            return False
        if self.count == 0:
            self.onset = step
        self.count += 1
        if self.count >= self.patience and not self.fired:
            self.fired = True
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count, "fired": self.fired, "onset": self.onset, "last_clear": self.last_clear}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count, self.fired = int(state.get("count", 0)), bool(state.get("fired", False))
        self.onset, self.last_clear = state.get("onset"), state.get("last_clear")


def alarm(policy: AlarmPolicy, step: int, detector: str, message: str, *, metric: str | None = None,
          value: float | None = None, threshold: float | None = None, trigger: Trigger | None = None,
          rollback_to: int | None = None) -> Alarm:
    """An alarm with the detector's configured severity and action; a roll back goes to the last step before
    the trigger's episode began (unless the detector knows better)."""
    if rollback_to is None and trigger is not None:
        rollback_to = trigger.last_clear
    return Alarm(step=step, detector=detector, message=message, severity=policy.severity, action=policy.action,
                 metric=metric, value=None if value is None else round(float(value), 6),
                 threshold=threshold, rollback_to=rollback_to)


def finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def mean(values: Sequence[float]) -> float:
    values = finite(values)
    return sum(values) / len(values) if values else math.nan
