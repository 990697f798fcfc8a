"""Latent outliers: the policy's samples move, in the reward model's own representation, away from the
responses the reward model was trained on (InfoRM, Miao et al. 2024: hacked samples are outliers of the
latent distribution, measured by Mahalanobis distance).

The reference is the reward model's last hidden state (at the position its head reads) on its training
responses: a Gaussian with a shrunk covariance, fitted on half of them; the other half sets the distance
threshold (its ``quantile``), so that about 1 − quantile of in-distribution responses exceed it. Each step:
the share of the policy's samples beyond the threshold (``outlier_rate``) and their mean distance relative to
the held-out half's median. Alarm when the outlier rate has risen by ``min_rise`` over the first steps.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from rewardgauge.data.records import Prompt
from rewardgauge.monitor.alarms import AlarmPolicy
from rewardgauge.monitor.detectors.base import Detector, Finding, History, Trigger, alarm
from rewardgauge.monitor.rollouts import Rollouts

# ``embed(prompts, responses)`` -> [N, H] features (``HFRewardModel.features``).
Embedder = Callable[[Sequence[Prompt], Sequence[str]], torch.Tensor]


@dataclass
class LatentConfig:
    enabled: bool = True
    reference: str | None = None    # preference pairs the reward model was trained on (both responses used)
    max_reference: int = 2000
    quantile: float = 0.99
    shrinkage: float = 0.1          # Σ = (1 − s)·S + s·tr(S)/d·I: the sample covariance of ~1k points in d
                                    # dimensions is singular or nearly so; shrinking keeps the distance stable
    max_scored: int = 256           # samples embedded per step
    baseline_steps: int = 3
    min_rise: float = 0.2
    patience: int = 2
    alarm: AlarmPolicy = field(default_factory=AlarmPolicy)

    def validate(self) -> None:
        if not 0.5 <= self.quantile < 1 or not 0 <= self.shrinkage <= 1:
            raise ValueError("latent: quantile must be in [0.5, 1) and shrinkage in [0, 1]")
        if min(self.max_reference, self.max_scored, self.baseline_steps, self.patience) < 1:
            raise ValueError("latent: max_reference, max_scored, baseline_steps and patience must be >= 1")
        self.alarm.validate()


class Gaussian:
    """Mean and shrunk inverse covariance of reference features; Mahalanobis distances to it."""

    def __init__(self, features: torch.Tensor, shrinkage: float):
        x = features.double()
        self.mean = x.mean(0)
        centred = x - self.mean
        cov = centred.T @ centred / max(1, len(x) - 1)
        d = cov.shape[0]
        cov = (1 - shrinkage) * cov + shrinkage * cov.trace() / d * torch.eye(d, dtype=cov.dtype)
        self.precision = torch.linalg.pinv(cov, hermitian=True)

    def distance(self, features: torch.Tensor) -> torch.Tensor:
        centred = features.double() - self.mean
        return ((centred @ self.precision) * centred).sum(-1).clamp_min(0).sqrt()


class LatentOutlierDetector(Detector):
    name = "latent"

    def __init__(self, embed: Embedder, reference: torch.Tensor, config: LatentConfig | None = None, seed: int = 0):
        self.embed, self.config, self.seed = embed, config or LatentConfig(), seed
        reference = reference.detach().float().cpu()
        if len(reference) < 8:
            raise ValueError(f"latent: need at least 8 reference responses, got {len(reference)}")
        self.gaussian = Gaussian(reference[0::2], self.config.shrinkage)
        held_out = self.gaussian.distance(reference[1::2])
        self.threshold = float(torch.quantile(held_out, self.config.quantile))
        self.median = float(held_out.median())
        self.history = History()
        self.trigger = Trigger(self.config.patience)

    def observe(self, step: int, rollouts: Rollouts) -> Finding:
        cfg = self.config
        idx = list(range(len(rollouts)))
        if len(idx) > cfg.max_scored:
            idx = sorted(random.Random(f"{self.seed}-{step}").sample(idx, cfg.max_scored))
        features = self.embed([rollouts.prompts[i] for i in idx], [rollouts.responses[i] for i in idx])
        distance = self.gaussian.distance(features.detach().float().cpu())
        rate = float((distance > self.threshold).float().mean())
        self.history.add(step, outlier_rate=rate)
        base = self.history.baseline("outlier_rate", cfg.baseline_steps)
        rise = rate - base if base is not None else math.nan
        finding = Finding({"outlier_rate": rate, "outlier_rise": rise,
                           "distance_ratio": float(distance.median()) / self.median if self.median > 0 else math.nan})
        if self.trigger.update(step, base is not None and rise >= cfg.min_rise):
            finding.alarms.append(alarm(
                cfg.alarm, step, self.name,
                f"{100 * rate:.0f}% of samples are latent outliers of the reward model's training responses "
                f"(beyond their {100 * cfg.quantile:g}th-percentile Mahalanobis distance), up from {100 * base:.0f}%",
                metric="outlier_rate", value=rate, threshold=base + cfg.min_rise, trigger=self.trigger))
        return finding

    def memory(self) -> dict[str, Any]:
        return {"history": self.history, "trigger": self.trigger}
