"""Small statistics on plain numbers, shared by the monitor and the report (numpy only, nothing of ours).

Each function names the estimator it implements; none of them needs scipy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

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


def ranks(x: Sequence[float]) -> np.ndarray:
    """1-based ranks with ties given their average rank (the ranks Spearman's rho is computed on)."""
    a = np.asarray(x, dtype=float)
    order = np.argsort(a, kind="mergesort")
    out = np.empty(len(a))
    sorted_a = a[order]
    i = 0
    while i < len(a):
        j = i
        while j + 1 < len(a) and sorted_a[j + 1] == sorted_a[i]:
            j += 1
        out[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return out


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson's r; nan where either side is constant or there are fewer than 3 points."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(a) < 3:
        return math.nan
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else math.nan


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation: Pearson's r of the (tie-averaged) ranks."""
    return pearson(ranks(x), ranks(y))


def slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of y on x: cov(x, y) / var(x); nan with fewer than 2 distinct x."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(a) < 2:
        return math.nan
    a = a - a.mean()
    var = float((a * a).sum())
    return float((a * (b - b.mean())).sum() / var) if var > 0 else math.nan


@dataclass(frozen=True)
class HockeyStick:
    """y ≈ a + b·x + c·max(0, x − knee): flat (or mildly sloped) up to the knee, steeper after it.

    slope_before = b, slope_after = b + c; ``gain`` is the share of the residual variance of a straight line
    that the knee removes (0: a line fits as well, 1: the hinge fits exactly)."""

    knee: float
    slope_before: float
    slope_after: float
    gain: float


def hockey_stick(x: Sequence[float], y: Sequence[float], knots: int = 9) -> HockeyStick | None:
    """Least-squares fit of a hinge (one knot) over candidate knees at the deciles of x; the knee with the
    smallest residual wins. None when x has fewer than 4 distinct values."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(np.unique(a)) < 4:
        return None
    line = np.stack([np.ones_like(a), a], 1)
    sse_line = _sse(line, b)
    best = None
    for knee in np.unique(np.quantile(a, np.linspace(0.1, 0.9, knots))):
        hinge = np.maximum(0.0, a - knee)
        if not hinge.any() or (hinge > 0).all():
            continue
        design = np.stack([np.ones_like(a), a, hinge], 1)
        coef, *_ = np.linalg.lstsq(design, b, rcond=None)
        sse = _sse(design, b, coef)
        if best is None or sse < best[0]:
            best = (sse, float(knee), coef)
    if best is None:
        return None
    sse, knee, (_, before, change) = best
    total = float(((b - b.mean()) ** 2).sum())
    gain = 1.0 - sse / sse_line if sse_line > 1e-12 * max(total, 1e-300) else 0.0  # a line fits exactly: no gain
    return HockeyStick(knee=knee, slope_before=float(before), slope_after=float(before + change), gain=float(gain))


def _sse(design: np.ndarray, y: np.ndarray, coef: np.ndarray | None = None) -> float:
    if coef is None:
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    r = y - design @ coef
    return float(r @ r)
