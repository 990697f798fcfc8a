"""Conservative aggregation of ensemble members' rewards (Coste et al. 2023, "Reward Model Ensembles Help
Mitigate Overoptimization"). Pure functions: ``members`` is [K, B], the result is [B].

Members are first put on one scale (``normalise``) with statistics from a reference set, so that a member
with a larger spread does not dominate the mean or the minimum.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import torch

from rewardgauge.data.steps import STEP_AGGREGATIONS

Aggregator = Literal["mean", "min", "mean_minus_std", "quantile"]
AGGREGATORS: tuple[str, ...] = get_args(Aggregator)


def normalise(members: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(r_k - mu_k) / sigma_k per member k; mean and std are [K] from a reference set."""
    return (members - mean[:, None]) / (std[:, None] + eps)


def mean(members: torch.Tensor) -> torch.Tensor:
    """Mean optimisation: R(x) = 1/K sum_k r_k(x)."""
    return members.mean(dim=0)


def worst_case(members: torch.Tensor) -> torch.Tensor:
    """Worst-case optimisation (WCO): R(x) = min_k r_k(x); the policy improves only where all agree."""
    return members.min(dim=0).values


def mean_minus_std(members: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    """Uncertainty-weighted optimisation (UWO): R(x) = mean_k r_k(x) - lambda * std_k r_k(x)."""
    return members.mean(dim=0) - lam * disagreement(members)


def lower_quantile(members: torch.Tensor, q: float = 0.25) -> torch.Tensor:
    """R(x) = the q-quantile of {r_k(x)} (linear interpolation); q=0 is min, q=0.5 the median."""
    return torch.quantile(members, q, dim=0)


def disagreement(members: torch.Tensor) -> torch.Tensor:
    """Population std across members, [B]: the ensemble's uncertainty (0 for one member)."""
    return members.std(dim=0, unbiased=False)


def get_aggregator(name: str, lam: float = 1.0, q: float = 0.25) -> Callable[[torch.Tensor], torch.Tensor]:
    if name == "mean":
        return mean
    if name == "min":
        return worst_case
    if name == "mean_minus_std":
        return lambda m: mean_minus_std(m, lam)
    if name == "quantile":
        return lambda m: lower_quantile(m, q)
    raise ValueError(f"unknown aggregator '{name}' (known: {', '.join(AGGREGATORS)})")


def aggregate_steps(step_scores: list[torch.Tensor], how: str) -> torch.Tensor:
    """One reward per solution from its step scores P(step correct), [B] from B tensors of [n_steps]:
    ``min`` the weakest step (Lightman et al. 2023 compare min and product), ``product`` the probability that
    every step is right, ``last`` the final step's score, ``mean`` the average. A solution without steps
    scores 0."""
    reduce = {"min": lambda s: s.min(), "product": lambda s: s.prod(), "last": lambda s: s[-1],
              "mean": lambda s: s.mean()}.get(how)
    if reduce is None:
        raise ValueError(f"unknown step aggregation '{how}' (known: {', '.join(STEP_AGGREGATIONS)})")
    return torch.stack([reduce(s.float()) if s.numel() else torch.zeros(()) for s in step_scores]) \
        if step_scores else torch.zeros(0)
