"""Alarms: what a detector found, how bad it is, and what the RL loop should do about it.

Actions, weakest first: ``warn`` (log it), ``raise_kl`` (multiply the KL coefficient), ``rollback`` (restore the
last healthy checkpoint: the newest one at or before ``rollback_to``), ``stop`` (end the run cleanly). The
monitor only says what to do; the RL loop does it, through the run directory's callbacks.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal, get_args

Severity = Literal["info", "warning", "critical"]
Action = Literal["warn", "raise_kl", "rollback", "stop"]
SEVERITIES: tuple[str, ...] = get_args(Severity)
ACTIONS: tuple[str, ...] = get_args(Action)  # in order of strength


@dataclass
class Alarm:
    step: int
    detector: str
    message: str
    severity: Severity = "warning"
    action: Action = "warn"
    metric: str | None = None
    value: float | None = None
    threshold: float | None = None
    rollback_to: int | None = None  # the last healthy step, for a roll back

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, row: dict) -> Alarm:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__ if k in row})

    def format(self) -> str:
        then = f"; roll back to step {self.rollback_to}" if self.action == "rollback" and self.rollback_to is not None \
            else ""
        return (f"[monitor] step {self.step} {self.severity.upper()} {self.detector}: {self.message} "
                f"-> {self.action}{then}")


@dataclass
class AlarmPolicy:
    """The severity and action of one detector's alarms (config)."""

    severity: Severity = "warning"
    action: Action = "warn"

    def validate(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {list(SEVERITIES)}, got {self.severity!r}")
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {list(ACTIONS)}, got {self.action!r}")


def strongest(alarms: Sequence[Alarm]) -> Action | None:
    """The strongest action asked for, or None without alarms."""
    return max((a.action for a in alarms), key=ACTIONS.index, default=None)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class AlarmSink:
    """Where alarms go as they happen: a writer of alarms.jsonl rows (the run directory's append-only log, or
    any ``write(rows)``) and the console."""

    def __init__(self, write: Callable[[list[dict]], None] | None = None,
                 echo: Callable[[str], None] | None = _stderr):
        self.write, self.echo = write, echo

    def emit(self, alarms: Iterable[Alarm]) -> None:
        alarms = list(alarms)
        if not alarms:
            return
        if self.write is not None:
            self.write([a.to_dict() for a in alarms])
        if self.echo is not None:
            for a in alarms:
                self.echo(a.format())
