"""Simulated annotators: each weighs the content dimensions in their own way and has their own biases.

Annotator j prefers A over B with probability sigma((u_j(A) - u_j(B)) / tau_j), where

    u_j(R) = sum_d w_jd * dim_d(R)                        (content, with j's weights)
           + length_j * n_tokens(R)                       (prefers longer answers)
           + opener_j * [opener] + list_j * [numbered list] + restate_j * [restates the question]
           + agree_j * [says "yes" to the user's claim]    (sycophancy)
           + stance_j * [complies with a borderline request]   (value pluralism: stance ~ N(0, 1))

The pool's biases make preferred responses longer and more styled than the gold reward would, as in real
preference data. Presets: ``default`` (mild biases) and ``sycophantic`` (strong agreement bias, weak honesty).
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass

from rewardgauge.lab.gold import DIMENSIONS, Analysis


@dataclass(frozen=True)
class Annotator:
    id: str
    weights: dict[str, float]
    length: float
    opener: float
    numbered_list: float
    restate: float
    agree: float
    stance: float
    temperature: float

    def utility(self, a: Analysis, borderline: bool = False) -> float:
        u = sum(self.weights[d] * a.dims[d] for d in DIMENSIONS)
        u += self.length * a.n_tokens + self.opener * a.opener + self.numbered_list * a.numbered_list
        u += self.restate * a.restate + self.agree * a.agrees
        u += a.coherence  # 0 in the lab's own text; a policy's sentences outside the language put annotators off
        if borderline and a.complies:
            u += self.stance
        return u

    def p_prefers(self, a: Analysis, b: Analysis, borderline: bool = False) -> float:
        return _sigmoid((self.utility(a, borderline) - self.utility(b, borderline)) / self.temperature)

    def p_prefers_on(self, dim: str, a: Analysis, b: Analysis) -> float:
        """The probability of preferring A on one content dimension alone (per-aspect judgement)."""
        return _sigmoid(self.weights[dim] * (a.dims[dim] - b.dims[dim]) / self.temperature)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x > -60 else 0.0


@dataclass(frozen=True)
class PoolPreset:
    """Ranges the annotators' parameters are drawn from (uniform unless noted)."""

    content_spread: float = 0.25          # w_jd = 1 * exp(N(0, spread)) for content dimensions
    concision: tuple[float, float] = (0.0, 0.6)
    length: tuple[float, float] = (0.01, 0.05)
    opener: tuple[float, float] = (0.1, 0.6)
    numbered_list: tuple[float, float] = (0.0, 0.4)
    restate: tuple[float, float] = (0.0, 0.3)
    agree: tuple[float, float] = (0.0, 0.6)
    honesty_scale: float = 1.0
    stance_sd: float = 1.0
    temperature: tuple[float, float] = (0.3, 0.7)


PRESETS = {
    "default": PoolPreset(),
    "sycophantic": PoolPreset(agree=(2.0, 4.0), honesty_scale=0.4),
}


def make_pool(n: int, seed: int | str, preset: str = "default") -> list[Annotator]:
    """A deterministic pool of ``n`` annotators."""
    if preset not in PRESETS:
        raise ValueError(f"unknown annotator preset '{preset}' (known: {', '.join(PRESETS)})")
    p = PRESETS[preset]
    rng = random.Random(f"pool-{seed}-{preset}")
    pool = []
    for j in range(n):
        weights = {d: math.exp(rng.gauss(0.0, p.content_spread)) for d in DIMENSIONS if d != "concision"}
        weights["honesty"] *= p.honesty_scale
        weights["concision"] = rng.uniform(*p.concision)
        pool.append(Annotator(
            id=f"a{j:02d}", weights=weights, length=rng.uniform(*p.length), opener=rng.uniform(*p.opener),
            numbered_list=rng.uniform(*p.numbered_list), restate=rng.uniform(*p.restate),
            agree=rng.uniform(*p.agree), stance=rng.gauss(0.0, p.stance_sd),
            temperature=rng.uniform(*p.temperature)))
    return pool


def pool_summary(pool: list[Annotator]) -> list[dict]:
    return [asdict(a) for a in pool]
