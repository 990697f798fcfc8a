"""Typed views of the JSON files other commands write: the only place that knows their keys.

``eval*.json`` is what ``rewardgauge rm eval --out`` writes (``EvalReport.to_dict()`` plus model and data);
``audit*.json`` is what ``rewardgauge audit --out`` writes. When their keys change, this module changes, and
the section builders and templates do not. A file of the wrong shape raises ValueError (it becomes a note).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

DIFFICULTIES = ("easy", "medium", "hard")
Z_95 = 1.959964  # two-sided 95 % normal quantile


def wilson_interval(p: float, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion p observed on n trials (Wilson 1927):
    (p + z²/2n ± z·sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n). Unlike p ± z·sqrt(p(1−p)/n) it stays inside [0, 1]
    and keeps a width at p = 1 (a 100 % accuracy on 30 pairs is not certainty). ``p`` may count ties as half."""
    if n <= 0:
        return (0.0, 1.0)
    z2 = z * z
    centre = p + z2 / (2 * n)
    half = z * math.sqrt(max(p * (1 - p), 0.0) / n + z2 / (4 * n * n))
    return (max(0.0, (centre - half) / (1 + z2 / n)), min(1.0, (centre + half) / (1 + z2 / n)))


@dataclass(frozen=True)
class Slice:
    """Accuracy on a slice of held-out pairs, with its 95 % Wilson interval."""

    name: str
    n: int
    accuracy: float
    low: float
    high: float

    @classmethod
    def of(cls, name: str, n: Any, accuracy: Any) -> Slice:
        n, accuracy = int(n), float(accuracy)
        return cls(name, n, accuracy, *wilson_interval(accuracy, n))


@dataclass(frozen=True)
class BarCheck:
    """One of the article's bars: the accuracy a slice must keep, and whether it does."""

    name: str
    need: float
    accuracy: float | None
    passed: bool | None
    slice: Slice | None  # the slice the bar is checked on (for its interval and count)


@dataclass(frozen=True)
class CalibrationBin:
    lo: float
    hi: float
    n: int
    confidence: float
    accuracy: float


@dataclass
class Evaluation:
    file: str  # path relative to the run directory
    model: str | None
    data: str | None
    overall: Slice
    ece: float | None
    mean_margin: float | None
    by_difficulty: list[Slice]
    bars: list[BarCheck]
    passed: bool | None
    calibration: list[CalibrationBin]
    difficulty_from_votes: bool
    by_aspect: list[Slice] = field(default_factory=list)
    by_source: list[Slice] = field(default_factory=list)
    ensemble: dict | None = None


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def _slices(d: Any, order: tuple[str, ...] = ()) -> list[Slice]:
    if not isinstance(d, dict):
        return []
    names = [k for k in order if k in d] + [k for k in d if k not in order]
    return [Slice.of(k, d[k]["n"], d[k]["accuracy"]) for k in names
            if isinstance(d[k], dict) and _num(d[k].get("accuracy")) is not None]


def read_evaluation(file: str, obj: dict) -> Evaluation:
    """An ``eval*.json``; KeyError / TypeError / ValueError on a file of another shape."""
    by_difficulty = _slices(obj.get("by_difficulty"), DIFFICULTIES)
    named = {s.name: s for s in by_difficulty}
    bars = []
    for name, bar in (obj.get("bars") or {}).items():
        passed = bar.get("passed")
        bars.append(BarCheck(name, float(bar["bar"]), _num(bar.get("accuracy")),
                             passed if isinstance(passed, bool) else None, named.get(name)))
    passed = obj.get("passed")
    return Evaluation(
        file=file, model=obj.get("model"), data=obj.get("data"),
        overall=Slice.of("all pairs", obj["n"], obj["accuracy"]),
        ece=_num(obj.get("ece")), mean_margin=_num(obj.get("mean_margin")),
        by_difficulty=by_difficulty, bars=bars, passed=passed if isinstance(passed, bool) else None,
        calibration=[CalibrationBin(float(b["lo"]), float(b["hi"]), int(b["n"]), float(b["confidence"]),
                                    float(b["accuracy"])) for b in obj.get("calibration") or []],
        difficulty_from_votes=obj.get("difficulty_origin") == "votes",
        by_aspect=_slices(obj.get("by_aspect")), by_source=_slices(obj.get("by_source")),
        ensemble=obj.get("ensemble") if isinstance(obj.get("ensemble"), dict) else None)


@dataclass(frozen=True)
class Probe:
    """One counterfactual edit of the audit: how the reward model's score and the gold reward move."""

    name: str
    n: int
    change: float  # mean reward(edited) − reward(original), in the reward model's units
    change_std: float | None  # the same in standard deviations of the original rewards
    rose: float | None  # share of responses whose reward rose
    gold_change: float | None  # the gold reward's mean change (None when there is no gold)


def read_audit(obj: dict) -> list[Probe]:
    """The probes of an ``audit*.json``: ``probes`` as {name: result} or as a list of results with a name."""
    probes = obj["probes"]
    rows = probes.items() if isinstance(probes, dict) else ((p["name"], p) for p in probes)
    out = []
    for name, p in rows:
        change = _num(p.get("mean_change"))
        if change is None:
            raise ValueError(f"probe '{name}' has no numeric mean_change")
        out.append(Probe(str(name), int(p.get("n", 0)), change, _num(p.get("mean_change_std_units")),
                         _num(p.get("flip_rate", p.get("frac_increased"))),  # frac_increased: audits before
                         _num(p.get("gold_mean_change"))))
    return out
