"""Losses and the estimators they are built from, as small pure functions on tensors.

Each docstring's first line is the equation it implements. Reward-model losses: r_c, r_r are the rewards of
the chosen and the rejected response, Δ = r_c - r_r, σ the logistic function. The preference-optimisation
and policy-gradient sections below state their own notation.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """L = -log σ(r_c - r_r)  (Bradley & Terry 1952; Ouyang et al. 2022, eq. 1)."""
    return -F.logsigmoid(r_chosen - r_rejected).mean()


def bradley_terry_margin_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor,
                              margin: torch.Tensor) -> torch.Tensor:
    """L = -log σ(r_c - r_r - m)  (Touvron et al. 2023, Llama 2, eq. 2): stronger preferences need wider gaps."""
    return -F.logsigmoid(r_chosen - r_rejected - margin).mean()


def soft_bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor,
                            p_chosen: torch.Tensor) -> torch.Tensor:
    """L = -[p log σ(Δ) + (1 - p) log σ(-Δ)]: cross-entropy against the vote fraction p that preferred chosen.

    With p = 1 this is the Bradley-Terry loss; with p = 0.6 the minimum is at σ(Δ) = 0.6, so a split vote
    teaches a small gap instead of the majority's certainty.
    """
    return F.binary_cross_entropy_with_logits(r_chosen - r_rejected, p_chosen.to(r_chosen.dtype))


def multi_objective_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor, p_chosen: torch.Tensor,
                         mask: torch.Tensor) -> torch.Tensor:
    """L = Σ_{b,k} m_bk · CE(σ(r_c,bk - r_r,bk), p_bk) / Σ m_bk: soft BT per aspect k, where labelled (m = 1).

    Inputs are [B, K]: one reward per aspect, the per-aspect preference for chosen, and the label mask
    (a pair built from one aspect's ratings teaches only that aspect's head).
    """
    per = F.binary_cross_entropy_with_logits(r_chosen - r_rejected, p_chosen.to(r_chosen.dtype), reduction="none")
    mask = mask.to(per.dtype)
    return (per * mask).sum() / mask.sum().clamp_min(1.0)


def reward_centering_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor, coef: float) -> torch.Tensor:
    """L = coef · (r_c + r_r)²  (Eisenstein et al. 2023): pins the free offset of BT rewards near zero."""
    return coef * ((r_chosen + r_rejected) ** 2).mean()


def step_bce_loss(step_logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L = -Σ m_s [y_s log σ(r_s) + (1 - y_s) log σ(-r_s)] / Σ m_s: binary cross-entropy of each labelled step s
    (Lightman et al. 2023, "Let's Verify Step by Step", §2.4: predict each step's correctness at its last token;
    Wang et al. 2024, Math-Shepherd, the PRM loss, with y_s a hard 0/1 label or a soft Monte Carlo estimate).

    Inputs are [B, T] over token positions; ``mask`` is 1 at the last token of a labelled step, 0 elsewhere.
    """
    per = F.binary_cross_entropy_with_logits(step_logits, targets.to(step_logits.dtype), reduction="none")
    mask = mask.to(per.dtype)
    return (per * mask).sum() / mask.sum().clamp_min(1.0)


# ---------------------------------------------------------------------------------------------------------------
# Direct preference optimisation. logπ_c, logπ_r are summed log-probabilities of the chosen / rejected response
# under the policy, logπ̂_c, logπ̂_r under the frozen reference, and h = (logπ_c - logπ̂_c) - (logπ_r - logπ̂_r).
# ---------------------------------------------------------------------------------------------------------------


def dpo_log_ratio_gap(logp_chosen: torch.Tensor, logp_rejected: torch.Tensor, ref_chosen: torch.Tensor,
                      ref_rejected: torch.Tensor) -> torch.Tensor:
    """h = (logπ_c - logπ̂_c) - (logπ_r - logπ̂_r): the gap of implicit rewards divided by β (per pair)."""
    return (logp_chosen - ref_chosen) - (logp_rejected - ref_rejected)


def dpo_loss(logp_chosen: torch.Tensor, logp_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float, label_smoothing: float = 0.0) -> torch.Tensor:
    """L = -(1 - ε) log σ(β h) - ε log σ(-β h)  (Rafailov et al. 2023, eq. 7; ε > 0: conservative DPO).

    ε is the assumed probability that a label is flipped (Mitchell 2023, "A note on DPO with noisy
    preferences"); with ε > 0 the loss has a finite minimum instead of pushing h to infinity.
    """
    logits = beta * dpo_log_ratio_gap(logp_chosen, logp_rejected, ref_chosen, ref_rejected)
    return (-(1 - label_smoothing) * F.logsigmoid(logits) - label_smoothing * F.logsigmoid(-logits)).mean()


def ipo_loss(logp_chosen: torch.Tensor, logp_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float) -> torch.Tensor:
    """L = (h - 1/(2β))²  (Azar et al. 2023, IPO, eq. 17 with τ = β): regresses the gap to a finite target.

    The log-probabilities are whatever the caller passes (sums here; TRL averages them over tokens for IPO).
    """
    h = dpo_log_ratio_gap(logp_chosen, logp_rejected, ref_chosen, ref_rejected)
    return ((h - 1 / (2 * beta)) ** 2).mean()


def dpo_implicit_reward(logp: torch.Tensor, ref_logp: torch.Tensor, beta: float) -> torch.Tensor:
    """r̂(x, y) = β (logπ(y|x) - logπ̂(y|x))  (Rafailov et al. 2023, eq. 5, up to the prompt's β log Z(x))."""
    return beta * (logp - ref_logp)


# ---------------------------------------------------------------------------------------------------------------
# Policy gradient. Per-token tensors are [N, T] over response tokens with a 0/1 ``mask`` [N, T]; logπ is the
# current policy's log-probability of each sampled token, logπ_old the sampling policy's, logπ̂ the reference's.
# ---------------------------------------------------------------------------------------------------------------

# How a [N, T] per-token loss becomes a scalar (the names are verl's ``loss_agg_mode``):
#   token-mean               Σ_it l_it / Σ_it m_it: every token weighs the same (DAPO, Yu et al. 2025, eq. 8)
#   seq-mean-token-mean      1/N Σ_i (Σ_t l_it / Σ_t m_it): every sequence weighs the same (GRPO, Shao et al. 2024,
#                            eq. 3), which favours short correct and long wrong answers (Liu et al. 2025)
#   seq-mean-token-sum       1/N Σ_i Σ_t l_it
#   seq-mean-token-sum-norm  1/(N·L) Σ_it l_it with a constant L (the maximum response length): Dr. GRPO (Liu et
#                            al. 2025, eq. 3), no length normalisation, so no length bias
TokenAggregation = Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"]
TOKEN_AGGREGATIONS: tuple[str, ...] = get_args(TokenAggregation)


def aggregate_token_loss(per_token: torch.Tensor, mask: torch.Tensor, mode: str = "token-mean",
                         normaliser: float | None = None, num_sequences: int | None = None) -> torch.Tensor:
    """A [N, T] per-token loss as a scalar under one of ``TOKEN_AGGREGATIONS`` (see the table above).

    ``normaliser`` is L of ``seq-mean-token-sum-norm`` (default: T, the padded response length); with
    ``token-mean`` it replaces Σ m. ``num_sequences`` replaces N in the ``seq-mean-*`` modes. Both let the
    parts of a batch (micro-batches, processes) each give their share, so that the parts add up to the whole
    batch's loss: pass the whole batch's token count, sequence count.
    """
    mask = mask.to(per_token.dtype)
    summed = per_token * mask
    n = per_token.shape[0] if num_sequences is None else num_sequences
    if mode == "token-mean":
        denominator = mask.sum().clamp_min(1.0) if normaliser is None else normaliser
        return summed.sum() / denominator
    if mode == "seq-mean-token-mean":
        return (summed.sum(-1) / mask.sum(-1).clamp_min(1.0)).sum() / n
    if mode == "seq-mean-token-sum":
        return summed.sum() / n
    if mode == "seq-mean-token-sum-norm":
        return summed.sum() / (n * (per_token.shape[-1] if normaliser is None else normaliser))
    raise ValueError(f"unknown aggregation {mode!r} (known: {', '.join(TOKEN_AGGREGATIONS)})")


def ppo_clip_per_token(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                       clip_low: float = 0.2, clip_high: float | None = None) -> torch.Tensor:
    """l_t = -min(ρ_t A_t, clip(ρ_t, 1 - ε_low, 1 + ε_high) A_t), ρ_t = exp(logπ - logπ_old)  (Schulman et al.
    2017, PPO, eq. 7; ε_high > ε_low is DAPO's clip-higher, Yu et al. 2025, eq. 10).

    ``advantages`` is [N, T] or [N] (one per sequence, broadcast over its tokens). ``clip_high`` None means
    symmetric clipping. A wider upper bound lets unlikely tokens with positive advantage grow, which keeps
    the policy's entropy from collapsing.
    """
    if advantages.dim() == 1:
        advantages = advantages[:, None]
    ratio = torch.exp(logp - old_logp)
    clipped = ratio.clamp(1 - clip_low, 1 + (clip_low if clip_high is None else clip_high))
    return -torch.min(ratio * advantages, clipped * advantages)


def clip_fraction(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                  clip_low: float = 0.2, clip_high: float | None = None) -> torch.Tensor:
    """Fraction of response tokens whose objective the clip made constant (ρ outside the range on the side
    where the advantage would push it further out)."""
    if advantages.dim() == 1:
        advantages = advantages[:, None]
    ratio = torch.exp(logp - old_logp)
    high = 1 + (clip_low if clip_high is None else clip_high)
    clipped = ((ratio > high) & (advantages > 0)) | ((ratio < 1 - clip_low) & (advantages < 0))
    mask = mask.to(ratio.dtype)
    return (clipped.to(ratio.dtype) * mask).sum() / mask.sum().clamp_min(1.0)


def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
                       clip: float = 0.2) -> torch.Tensor:
    """L_V = ½ mean_t max((V_t - R_t)², (V_old,t + clip(V_t - V_old,t, -ε, ε) - R_t)²)  (PPO as in OpenAI
    baselines; Ouyang et al. 2022 train the value model the same way). Token mean over ``mask``."""
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    per_token = 0.5 * torch.max((values - returns) ** 2, (clipped - returns) ** 2)
    mask = mask.to(per_token.dtype)
    return (per_token * mask).sum() / mask.sum().clamp_min(1.0)


# ---------------------------------------------------------------------------------------------------------------
# Advantages. Outcome rewards r are [N] with N = B·G: the G samples of one prompt are consecutive.
# ---------------------------------------------------------------------------------------------------------------


def grpo_advantages(rewards: torch.Tensor, group_size: int, scale: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """A_i = (r_i - mean(r_group)) / (std(r_group) + eps)  (Shao et al. 2024, GRPO, eq. 4 as outcome
    supervision); ``scale=False`` gives Dr. GRPO's A_i = r_i - mean(r_group) (Liu et al. 2025, eq. 3), whose
    advantage does not grow for prompts that are all-but-solved or all-but-failed.

    std is the unbiased (n - 1) one, as in TRL; a group whose rewards are all equal gets A = 0.
    """
    groups = _groups(rewards, group_size)
    centred = groups - groups.mean(dim=1, keepdim=True)
    if scale:
        std = groups.std(dim=1, keepdim=True)
        centred = centred / (std + eps).masked_fill(std == 0, 1.0)  # an all-equal group is 0, never 0/0
    return centred.reshape(-1)


def rloo_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """A_i = r_i - 1/(G-1) Σ_{j≠i} r_j  (Kool et al. 2019; Ahmadian et al. 2024, RLOO, eq. 5): each sample's
    baseline is the mean of the other samples of its prompt, so the estimate stays unbiased."""
    groups = _groups(rewards, group_size)
    others = (groups.sum(dim=1, keepdim=True) - groups) / (group_size - 1)
    return (groups - others).reshape(-1)


def step_rewards_per_token(step_rewards: torch.Tensor, step_ends: torch.Tensor, step_mask: torch.Tensor,
                           width: int) -> torch.Tensor:
    """r_t = Σ_j [t = e_j] r_j  (Wang et al. 2024, Math-Shepherd, §3.4 "step-by-step PPO": a process reward
    model's score of step j paid at the step's last token e_j). Steps are [N, S] (``step_mask`` 0 for padding
    and for steps without a score); out [N, width]."""
    rewards = (step_rewards * step_mask).nan_to_num(0.0).to(torch.float32)
    out = torch.zeros(step_rewards.shape[0], width, dtype=rewards.dtype, device=rewards.device)
    return out.scatter_add_(1, step_ends.clamp(0, width - 1).long(), rewards)


def process_supervision_advantages(step_rewards: torch.Tensor, step_ends: torch.Tensor, step_mask: torch.Tensor,
                                   group_size: int, width: int, scale: bool = True,
                                   eps: float = 1e-4) -> torch.Tensor:
    """Â_{i,t} = Σ_{j: e_ij >= t} r̃_ij,  r̃_ij = (r_ij - mean(R)) / std(R)  (Shao et al. 2024, DeepSeekMath,
    §4.1.3, GRPO with process supervision): R is every step reward of the G responses to one prompt, and a
    token's advantage is the sum of the normalised rewards of its own step and the steps after it. [N, S] in,
    [N, width] out. ``scale=False`` leaves out the std (as Dr. GRPO does for outcome rewards); std is the
    unbiased one, and a group whose step rewards are all equal (or that has one step) gets Â = 0."""
    n = step_rewards.shape[0]
    if group_size < 2 or n % group_size:
        raise ValueError(f"need group_size >= 2 dividing {n} responses, got {group_size}")
    mask = step_mask.to(torch.float32)
    values = (step_rewards.to(torch.float32) * mask).nan_to_num(0.0)
    grouped_values = values.reshape(n // group_size, -1)
    grouped_mask = mask.reshape(n // group_size, -1)
    count = grouped_mask.sum(-1, keepdim=True)
    mean = grouped_values.sum(-1, keepdim=True) / count.clamp_min(1)
    centred = (grouped_values - mean) * grouped_mask
    if scale:
        std = (centred.pow(2).sum(-1, keepdim=True) / (count - 1).clamp_min(1)).sqrt()
        centred = centred / (std + eps).masked_fill(std == 0, 1.0)
    per_token = step_rewards_per_token(centred.reshape(n, -1), step_ends, mask, width)
    return per_token.flip(-1).cumsum(-1).flip(-1)


def _groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    if group_size < 2:
        raise ValueError(f"group advantages need at least 2 samples per prompt, got {group_size}")
    if rewards.dim() != 1 or rewards.shape[0] % group_size:
        raise ValueError(f"rewards must be [B * {group_size}], got shape {tuple(rewards.shape)}")
    return rewards.reshape(-1, group_size)


def gae_advantages(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
                   lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Â_t = Σ_l (γλ)^l δ_{t+l}, δ_t = r_t + γ V_{t+1} - V_t  (Schulman et al. 2016, GAE, eq. 16); returns
    R_t = Â_t + V_t, the value model's target. [N, T] in, ([N, T], [N, T]) out.

    Right-padded responses: V after a sequence's last token is 0 (the episode ends there), and padded
    positions get Â = R = 0.
    """
    mask = mask.to(values.dtype)
    values = values * mask
    rewards = rewards * mask
    advantages = torch.zeros_like(values)
    running = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[1])):
        next_value = values[:, t + 1] if t + 1 < values.shape[1] else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * mask[:, t]
        advantages[:, t] = running
    return advantages, (advantages + values) * mask


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / std over the masked entries (PPO's advantage normalisation; Ziegler et al. 2019)."""
    mask = mask.to(x.dtype)
    n = mask.sum().clamp_min(1.0)
    mean = (x * mask).sum() / n
    var = (((x - mean) * mask) ** 2).sum() / (n - 1).clamp_min(1.0)
    out = (x - mean) * torch.rsqrt(var + eps)
    return (out if shift_mean else out + mean) * mask


# ---------------------------------------------------------------------------------------------------------------
# KL to the reference, estimated per sampled token from log r = logπ̂ - logπ (samples come from π).
# Schulman (2020), "Approximating KL divergence": all three estimate KL(π || π̂) from samples of π.
# ---------------------------------------------------------------------------------------------------------------

KLEstimator = Literal["k1", "k2", "k3"]
KL_ESTIMATORS: tuple[str, ...] = get_args(KLEstimator)


def kl_k1(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k1 = -log r = logπ - logπ̂: unbiased, high variance, negative on some tokens."""
    return logp - ref_logp


def kl_k2(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k2 = ½ (log r)²: biased, low variance, never negative. As a loss, its gradient is the gradient of
    KL(π || π̂) (Tang & Munos 2025)."""
    return 0.5 * (logp - ref_logp) ** 2


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k3 = (r - 1) - log r: unbiased, low variance, never negative (GRPO's KL term, Shao et al. 2024, eq. 4)."""
    log_r = ref_logp - logp
    return torch.exp(log_r) - 1 - log_r


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str = "k3") -> torch.Tensor:
    """The per-token estimate named by ``estimator`` (one of ``KL_ESTIMATORS``)."""
    if estimator == "k1":
        return kl_k1(logp, ref_logp)
    if estimator == "k2":
        return kl_k2(logp, ref_logp)
    if estimator == "k3":
        return kl_k3(logp, ref_logp)
    raise ValueError(f"unknown KL estimator {estimator!r} (known: {', '.join(KL_ESTIMATORS)})")


def kl_penalised_rewards(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
    """r_t = -β KL_t + [t = last] · r(x, y)  (Ziegler et al. 2019, eq. 2; Ouyang et al. 2022, eq. 2): the KL
    penalty paid per token in the reward, the reward model's score at the response's last token. [N, T] out.
    ``scores`` of shape [N, T] are per-token rewards already (``step_rewards_per_token``: dense, per step)."""
    mask = mask.to(kl.dtype)
    if scores.dim() == 2:
        return -beta * kl * mask + scores.to(kl.dtype) * mask
    lengths = mask.sum(-1).long()
    last = F.one_hot((lengths - 1).clamp_min(0), mask.shape[-1]).to(kl.dtype) * (lengths > 0)[:, None]
    return -beta * kl * mask + scores.to(kl.dtype)[:, None] * last


class AdaptiveKLController:
    """β_{t+1} = β_t (1 + K_β e_t), e_t = clip(KL_t / KL_target - 1, -0.2, 0.2)  (Ziegler et al. 2019,
    section 2.2, with K_β = n_steps / horizon): β grows while the measured KL is above its target and shrinks
    below it. A target of None keeps β fixed. ``state_dict`` / ``load_state_dict`` carry β across a resume."""

    def __init__(self, init_coef: float, target: float | None = None, horizon: int = 10000):
        if init_coef < 0 or (target is not None and target <= 0) or horizon < 1:
            raise ValueError("need init_coef >= 0, target > 0 (or None) and horizon >= 1")
        self.coef, self.target, self.horizon = float(init_coef), target, horizon

    def update(self, current_kl: float, n_steps: int = 1) -> float:
        if self.target is not None:
            error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
            self.coef *= 1.0 + error * n_steps / self.horizon
        return self.coef

    def state_dict(self) -> dict[str, float]:
        return {"coef": self.coef}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.coef = float(state["coef"])
