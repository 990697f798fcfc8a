"""DPO / IPO, PPO clipping, value loss, GRPO / Dr. GRPO / RLOO / GAE advantages, KL estimators and the KL
controller against values worked out by hand (the arithmetic is written out beside each expectation)."""

import math

import pytest
import torch

from rewardgauge import losses


def _logsig(x):
    return -math.log1p(math.exp(-x))


def t(*rows):
    return torch.tensor(rows, dtype=torch.float64)


# -- DPO family -------------------------------------------------------------------------------------------------

def test_dpo_sigmoid_and_conservative():
    # h = (-3 - -4) - (-5 - -4.5) = 1 + 0.5 = 1.5; pair 2: h = (-2 - -2) - (-2 - -3) = -1
    pc, pr, rc, rr = t(-3.0, -2.0), t(-5.0, -2.0), t(-4.0, -2.0), t(-4.5, -3.0)
    beta = 0.5
    expected = -(_logsig(0.75) + _logsig(-0.5)) / 2
    assert losses.dpo_loss(pc, pr, rc, rr, beta).item() == pytest.approx(expected, rel=1e-12)
    eps = 0.1
    expected = (-(0.9 * _logsig(0.75) + 0.1 * _logsig(-0.75)) - (0.9 * _logsig(-0.5) + 0.1 * _logsig(0.5))) / 2
    assert losses.dpo_loss(pc, pr, rc, rr, beta, label_smoothing=eps).item() == pytest.approx(expected, rel=1e-12)


def test_conservative_dpo_has_a_finite_optimum():
    # d/dh of -(1-ε) log σ(βh) - ε log σ(-βh) is zero where σ(βh) = 1 - ε, i.e. βh = log((1-ε)/ε)
    eps, beta = 0.1, 0.2
    h = torch.tensor([math.log(0.9 / 0.1) / beta], dtype=torch.float64, requires_grad=True)
    losses.dpo_loss(h, torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64),
                    torch.zeros(1, dtype=torch.float64), beta, eps).backward()
    assert abs(h.grad.item()) < 1e-12


def test_ipo_regresses_to_one_over_two_beta():
    # h = 1.5 and -1 as above; target 1 / (2 * 0.5) = 1 -> ((0.5)² + (-2)²) / 2 = 2.125
    pc, pr, rc, rr = t(-3.0, -2.0), t(-5.0, -2.0), t(-4.0, -2.0), t(-4.5, -3.0)
    assert losses.ipo_loss(pc, pr, rc, rr, beta=0.5).item() == pytest.approx(2.125, rel=1e-12)


def test_implicit_reward():
    assert losses.dpo_implicit_reward(t(-3.0, -1.0), t(-4.0, -1.5), 0.1).tolist() == pytest.approx([0.1, 0.05])


# -- aggregation ------------------------------------------------------------------------------------------------

def test_token_aggregations():
    per = t([1.0, 2.0, 3.0], [4.0, 100.0, 100.0])
    mask = t([1, 1, 1], [1, 0, 0])
    agg = losses.aggregate_token_loss
    assert agg(per, mask, "token-mean").item() == pytest.approx((1 + 2 + 3 + 4) / 4)
    assert agg(per, mask, "seq-mean-token-mean").item() == pytest.approx((6 / 3 + 4 / 1) / 2)
    assert agg(per, mask, "seq-mean-token-sum").item() == pytest.approx((6 + 4) / 2)
    assert agg(per, mask, "seq-mean-token-sum-norm").item() == pytest.approx(10 / (2 * 3))
    assert agg(per, mask, "seq-mean-token-sum-norm", normaliser=5).item() == pytest.approx(10 / (2 * 5))
    assert agg(per, mask, "token-mean", normaliser=8).item() == pytest.approx(10 / 8)
    # parts of a batch add up to the whole batch's loss
    for mode, kw in (("token-mean", {"normaliser": 4}), ("seq-mean-token-mean", {"num_sequences": 2}),
                     ("seq-mean-token-sum", {"num_sequences": 2}),
                     ("seq-mean-token-sum-norm", {"normaliser": 3, "num_sequences": 2})):
        parts = agg(per[:1], mask[:1], mode, **kw) + agg(per[1:, :1], mask[1:, :1], mode, **kw)
        assert parts.item() == pytest.approx(agg(per, mask, mode).item()), mode
    with pytest.raises(ValueError, match="unknown aggregation"):
        agg(per, mask, "sum")


# -- PPO --------------------------------------------------------------------------------------------------------

def test_ppo_clip_symmetric_and_clip_higher():
    # ratios e^0.5 = 1.6487, e^-0.5 = 0.6065, 1.1 and 0.9
    logp = t([0.5, -0.5, math.log(1.1), math.log(0.9)])
    old = torch.zeros_like(logp)
    adv = t([2.0, -1.0, 1.0, 1.0])  # per-token advantages, [1, 4]
    per = losses.ppo_clip_per_token(logp, old, adv)
    # A = 2, ρ = 1.6487 > 1.2: min(3.297, 2.4) = 2.4 -> -2.4
    # A = -1, ρ = 0.6065 < 0.8: min(-0.6065, -0.8) = -0.8 -> 0.8
    # A = 1, ρ = 1.1 inside: -1.1 ; A = 1, ρ = 0.9 (below, but A > 0 takes the unclipped 0.9): -0.9
    assert per[0].tolist() == pytest.approx([-2.4, 0.8, -1.1, -0.9])
    # clip-higher: ε_high = 0.28 -> 2 * 1.28 = 2.56
    per = losses.ppo_clip_per_token(logp, old, adv, clip_low=0.2, clip_high=0.28)
    assert per[0].tolist() == pytest.approx([-2.56, 0.8, -1.1, -0.9])
    frac = losses.clip_fraction(logp, old, adv, torch.ones(1, 4), 0.2)
    assert frac.item() == pytest.approx(2 / 4)
    frac = losses.clip_fraction(logp, old, adv, torch.tensor([[1, 0, 1, 1]]), 0.2)
    assert frac.item() == pytest.approx(1 / 3)


def test_ppo_sequence_advantage_broadcasts_and_gradient_is_zero_when_clipped():
    logp = torch.tensor([[0.5, 0.0]], requires_grad=True)
    per = losses.ppo_clip_per_token(logp, torch.zeros(1, 2), torch.tensor([2.0]))
    per.sum().backward()
    # token 1 is clipped (constant 2.4); token 2 has ρ = 1: d(-ρ A)/dlogp = -ρ A = -2
    assert logp.grad.tolist() == [[0.0, -2.0]]


def test_clipped_value_loss():
    v, v_old, ret = t(1.0, 0.0), t(0.5, 0.0), t(2.0, 0.1)
    # token 1: (1 - 2)² = 1; clipped v = 0.5 + 0.2 = 0.7 -> (0.7 - 2)² = 1.69 -> max 1.69
    # token 2: (0 - 0.1)² = 0.01 both ways
    loss = losses.clipped_value_loss(v[None], v_old[None], ret[None], torch.ones(1, 2), clip=0.2)
    assert loss.item() == pytest.approx(0.5 * (1.69 + 0.01) / 2)
    loss = losses.clipped_value_loss(v[None], v_old[None], ret[None], torch.tensor([[1, 0]]), clip=0.2)
    assert loss.item() == pytest.approx(0.5 * 1.69)


# -- advantages -------------------------------------------------------------------------------------------------

def test_grpo_and_dr_grpo_advantages():
    r = t(1.0, 2.0, 3.0, 6.0, 0.5, 0.5, 0.5, 0.5)
    # group 1: mean 3, deviations -2 -1 0 3, unbiased var = (4 + 1 + 0 + 9) / 3 = 14/3
    std = math.sqrt(14 / 3)
    a = losses.grpo_advantages(r, 4, eps=0.0)
    assert a[:4].tolist() == pytest.approx([-2 / std, -1 / std, 0.0, 3 / std])
    assert a[4:].tolist() == [0.0, 0.0, 0.0, 0.0]  # equal rewards: no signal (and no division by zero)
    assert losses.grpo_advantages(r, 4, scale=False).tolist() == pytest.approx([-2, -1, 0, 3, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="at least 2"):
        losses.grpo_advantages(r, 1)
    with pytest.raises(ValueError, match="must be"):
        losses.grpo_advantages(r, 3)


def test_rloo_advantages():
    r = t(1.0, 2.0, 6.0)
    # A_1 = 1 - (2 + 6)/2 = -3; A_2 = 2 - 3.5 = -1.5; A_3 = 6 - 1.5 = 4.5 (= G/(G-1) (r - mean) = 1.5 (r - 3))
    assert losses.rloo_advantages(r, 3).tolist() == pytest.approx([-3.0, -1.5, 4.5])


def test_gae_by_hand():
    rewards = t([0.0, 0.0, 1.0], [0.5, 7.0, 7.0])
    values = t([0.1, 0.2, 0.3], [0.4, 9.0, 9.0])
    mask = t([1, 1, 1], [1, 0, 0])
    g, lam = 0.9, 0.8
    # row 1: δ2 = 1 + 0 - 0.3 = 0.7; δ1 = 0 + 0.9*0.3 - 0.2 = 0.07; δ0 = 0 + 0.9*0.2 - 0.1 = 0.08
    a2 = 0.7
    a1 = 0.07 + g * lam * a2
    a0 = 0.08 + g * lam * a1
    # row 2 ends after one token: δ0 = 0.5 + 0 - 0.4 = 0.1
    adv, ret = losses.gae_advantages(rewards, values, mask, gamma=g, lam=lam)
    assert adv[0].tolist() == pytest.approx([a0, a1, a2])
    assert adv[1].tolist() == pytest.approx([0.1, 0.0, 0.0])
    assert ret[0].tolist() == pytest.approx([a0 + 0.1, a1 + 0.2, a2 + 0.3])
    assert ret[1].tolist() == pytest.approx([0.5, 0.0, 0.0])
    # γ = λ = 1: the advantage is the return-to-go minus V_t
    adv, _ = losses.gae_advantages(rewards[:1], values[:1], mask[:1], gamma=1.0, lam=1.0)
    assert adv[0].tolist() == pytest.approx([1 - 0.1, 1 - 0.2, 1 - 0.3])


def test_whiten():
    x, mask = t([1.0, 2.0, 3.0, 50.0]), t([1, 1, 1, 0])
    # mean 2, unbiased std 1
    assert losses.whiten(x, mask)[0].tolist() == pytest.approx([-1.0, 0.0, 1.0, 0.0], abs=1e-6)


# -- KL ---------------------------------------------------------------------------------------------------------

def test_kl_estimators_by_hand():
    logp, ref = t(-1.0, -2.0), t(-1.5, -1.0)
    # log r = ref - logp = -0.5, 1.0
    assert losses.kl_k1(logp, ref).tolist() == pytest.approx([0.5, -1.0])
    assert losses.kl_k2(logp, ref).tolist() == pytest.approx([0.125, 0.5])
    assert losses.kl_k3(logp, ref).tolist() == pytest.approx([math.exp(-0.5) - 1 + 0.5, math.e - 1 - 1.0])
    assert losses.kl_estimate(logp, ref, "k2").tolist() == pytest.approx([0.125, 0.5])
    with pytest.raises(ValueError, match="unknown KL estimator"):
        losses.kl_estimate(logp, ref, "k4")


def test_kl_estimators_estimate_the_true_kl():
    # Categorical p, q over 3 outcomes, exact expectation under p: k1 and k3 are unbiased, k2 is close here.
    p, q = t(0.5, 0.3, 0.2), t(0.4, 0.4, 0.2)
    kl = float((p * (p / q).log()).sum())
    for name, tol in (("k1", 1e-12), ("k3", 1e-12), ("k2", 2e-3)):
        est = float((p * losses.kl_estimate(p.log(), q.log(), name)).sum())
        assert est == pytest.approx(kl, abs=tol), name


def test_kl_in_the_reward():
    kl = t([0.1, 0.2, 0.3], [0.4, 0.5, 0.6])
    mask = t([1, 1, 0], [1, 1, 1])
    r = losses.kl_penalised_rewards(t(2.0, -1.0), kl, mask, beta=0.5)
    assert r[0].tolist() == pytest.approx([-0.05, -0.1 + 2.0, 0.0])
    assert r[1].tolist() == pytest.approx([-0.2, -0.25, -0.3 - 1.0])
    empty = losses.kl_penalised_rewards(t(2.0), t([0.1, 0.1]), t([0, 0]), beta=1.0)
    assert empty.tolist() == [[0.0, 0.0]]


def test_adaptive_kl_controller():
    c = losses.AdaptiveKLController(0.1, target=6.0, horizon=100)
    # KL 9: e = clip(9/6 - 1) = 0.2 (clipped from 0.5) -> 0.1 * (1 + 0.2 * 10 / 100) = 0.102
    assert c.update(9.0, n_steps=10) == pytest.approx(0.102)
    # KL 5.4: e = -0.1 -> 0.102 * (1 - 0.1 * 1 / 100)
    assert c.update(5.4) == pytest.approx(0.102 * 0.999)
    restored = losses.AdaptiveKLController(0.1, target=6.0, horizon=100)
    restored.load_state_dict(c.state_dict())
    assert restored.coef == c.coef
    fixed = losses.AdaptiveKLController(0.1)
    assert fixed.update(100.0) == 0.1
