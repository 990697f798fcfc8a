"""The monitor: runs its detectors on each RL step's samples and says what to do.

    monitor = Monitor([LengthDetector(), StyleDetector(patterns, proxy), ...], sink=AlarmSink(write=...))
    observation = monitor.observe(step, rollouts)    # metrics (monitor/<detector>/<name>) and alarms
    observation.action                               # the strongest action asked for, or None

``build_monitor`` (``build.py``) assembles it from a ``MonitorConfig``; the RL loop or a trainer callback
calls ``observe`` once per step and carries out the action. Every alarm is written and printed when raised.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rewardgauge.monitor.alarms import Action, Alarm, AlarmSink, strongest
from rewardgauge.monitor.detectors.base import Detector
from rewardgauge.monitor.detectors.disagreement import DisagreementConfig
from rewardgauge.monitor.detectors.gold_gap import GoldGapConfig
from rewardgauge.monitor.detectors.kl import KLBudgetConfig
from rewardgauge.monitor.detectors.latent import LatentConfig
from rewardgauge.monitor.detectors.length import LengthConfig
from rewardgauge.monitor.detectors.style import StyleConfig
from rewardgauge.monitor.detectors.sycophancy import SycophancyConfig
from rewardgauge.monitor.onpolicy import OnPolicyConfig
from rewardgauge.monitor.rollouts import Rollouts


@dataclass
class MonitorConfig:
    """The ``monitor:`` section of an RL config: one sub-section per detector."""

    enabled: bool = False
    every: int = 1                          # observe every N steps
    probes: str = "auto"                    # the words of the style and agreement patterns: auto | lab | english
    kl_raise_factor: float = 2.0            # what raise_kl (and a roll back) multiplies the KL coefficient by
    max_rollbacks: int = 2                  # roll backs in one run; a roll back alarm after that stops it
    length: LengthConfig = field(default_factory=LengthConfig)
    style: StyleConfig = field(default_factory=StyleConfig)
    sycophancy: SycophancyConfig = field(default_factory=SycophancyConfig)
    disagreement: DisagreementConfig = field(default_factory=DisagreementConfig)
    latent: LatentConfig = field(default_factory=LatentConfig)
    gold_gap: GoldGapConfig = field(default_factory=GoldGapConfig)
    kl: KLBudgetConfig = field(default_factory=KLBudgetConfig)
    onpolicy: OnPolicyConfig = field(default_factory=OnPolicyConfig)

    def validate(self) -> None:
        if self.every < 1:
            raise ValueError(f"monitor.every must be >= 1, got {self.every}")
        if self.max_rollbacks < 0:
            raise ValueError(f"monitor.max_rollbacks must be >= 0, got {self.max_rollbacks}")
        if self.probes not in ("auto", "lab", "english"):
            raise ValueError(f"monitor.probes must be auto, lab or english, got {self.probes!r}")
        if not (math.isfinite(self.kl_raise_factor) and self.kl_raise_factor > 1):
            raise ValueError(f"monitor.kl_raise_factor must be > 1, got {self.kl_raise_factor}")
        for section in (self.length, self.style, self.sycophancy, self.disagreement, self.latent, self.gold_gap,
                        self.kl, self.onpolicy):
            section.validate()


@dataclass
class Observation:
    step: int
    metrics: dict[str, float] = field(default_factory=dict)
    alarms: list[Alarm] = field(default_factory=list)

    @property
    def action(self) -> Action | None:
        return strongest(self.alarms)

    @property
    def rollback_to(self) -> int | None:
        """Where a roll back goes: the earliest healthy step any rolling-back alarm names."""
        steps = [a.rollback_to for a in self.alarms if a.action == "rollback" and a.rollback_to is not None]
        return min(steps) if steps else None


class Monitor:
    def __init__(self, detectors: Sequence[Detector], sink: AlarmSink | None = None, every: int = 1):
        names = [d.name for d in detectors]
        if len(set(names)) != len(names):
            raise ValueError(f"two detectors share a name: {names}")
        self.detectors, self.sink, self.every = list(detectors), sink or AlarmSink(), every
        self.alarms: list[Alarm] = []
        self.skipped: dict[str, str] = {}  # detectors left out, and why (``build_monitor`` fills it)

    def observe(self, step: int, rollouts: Rollouts) -> Observation:
        """Run every detector on this step's samples (every ``every`` steps); alarms are emitted at once."""
        observation = Observation(step)
        if step % self.every and step != 1:
            return observation
        for detector in self.detectors:
            finding = detector.observe(step, rollouts)
            observation.metrics.update({f"monitor/{detector.name}/{k}": _plain(v) for k, v in finding.metrics.items()})
            observation.alarms.extend(finding.alarms)
        self.alarms.extend(observation.alarms)
        self.sink.emit(observation.alarms)
        return observation

    def state_dict(self) -> dict[str, Any]:
        """Everything the detectors remember, as JSON (saved with a checkpoint)."""
        return {"detectors": {d.name: d.state_dict() for d in self.detectors},
                "alarms": [a.to_dict() for a in self.alarms]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for d in self.detectors:
            d.load_state_dict(state.get("detectors", {}).get(d.name, {}))
        self.alarms = [Alarm.from_dict(a) for a in state.get("alarms", [])]


def _plain(v: Any) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def from_main_process(decision: Any) -> Any:
    """Process 0's decision (picklable), on every process (a lone process keeps its own): the monitor runs
    on process 0, and every process must stop, roll back or change the KL coefficient at the same step."""
    import torch

    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return decision
    box = [decision]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]
