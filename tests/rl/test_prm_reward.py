"""A process reward model as the RL reward: aggregated (the PRM's default step aggregate is the reward) or
dense (each step's score where the step ends: per-token rewards for PPO, process supervision for GRPO)."""

import json

import pytest
import torch

from rewardgauge import losses
from rewardgauge.cli import main
from rewardgauge.config import load_config
from rewardgauge.train.config import RLConfig
from rewardgauge.train.rl import run_rl


@pytest.fixture(scope="module")
def lab_prm(lab_rl, tmp_path_factory):
    """A PRM on the RL policy's backbone (so it reads the policy's words), trained briefly on lab chains."""
    from rewardgauge.data.steps import save_step_records
    from rewardgauge.lab.steps import sample_step_records
    from rewardgauge.train.config import PRMTrainConfig
    from rewardgauge.train.prm import train_prm

    root = tmp_path_factory.mktemp("rl_prm")
    save_step_records(root / "steps.jsonl", sample_step_records(64, seed=0))
    train_prm(PRMTrainConfig(model=str(lab_rl["policy"]), data=str(root / "steps.jsonl"), out=str(root / "prm"),
                             separator=" . ", epochs=1, batch_size=16, lr=1e-3, progress=False, save_every=0))
    return root / "prm"


def _cfg(lab_rl, prm, out, **flat):
    base = {"prompts": str(lab_rl["prompts"]), "out": str(out), "policy.model": str(lab_rl["policy"]),
            "reward.models": str(prm), "steps": 1, "prompts_per_step": 4, "generation.group_size": 4,
            "generation.max_new_tokens": 16, "policy.lr": 1e-3, "kl.coef": 0.05, "progress": False,
            "save_every": 0, "samples_per_step": 16}
    return load_config(RLConfig, None, {**base, **flat})


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_process_supervision_advantages_by_hand():
    # G = 2; response 0: steps 1.0 (ends at token 1) and 0.0 (token 3); response 1: one step 1.0 (token 2) and
    # a padded slot. R = {1, 0, 1}: mean 2/3, unbiased std sqrt(1/3); normalised 1/sqrt(3), -2/sqrt(3), 1/sqrt(3).
    rewards = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    ends = torch.tensor([[1, 3], [2, 0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    a, b = 3 ** -0.5, -2 * 3 ** -0.5
    adv = losses.process_supervision_advantages(rewards, ends, mask, group_size=2, width=5, eps=0.0)
    expected = torch.tensor([[a + b, a + b, b, b, 0.0], [a, a, a, 0.0, 0.0]])
    torch.testing.assert_close(adv, expected)
    centred = losses.process_supervision_advantages(rewards, ends, mask, group_size=2, width=5, scale=False)
    torch.testing.assert_close(centred[1], torch.tensor([1 / 3, 1 / 3, 1 / 3, 0.0, 0.0]))
    same = losses.process_supervision_advantages(torch.ones(2, 2), ends, mask, group_size=2, width=5)
    assert torch.equal(same, torch.zeros(2, 5))  # all step rewards equal: nothing to prefer


def test_step_rewards_per_token_and_dense_kl_penalty():
    rewards = torch.tensor([[0.9, 0.2, float("nan")]])
    ends = torch.tensor([[1, 3, 4]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])  # the third step was cut off: no reward
    dense = losses.step_rewards_per_token(rewards, ends, mask, width=5)
    torch.testing.assert_close(dense, torch.tensor([[0.0, 0.9, 0.0, 0.2, 0.0]]))
    kl = torch.full((1, 5), 0.5)
    response_mask = torch.tensor([[1, 1, 1, 1, 0]])
    paid = losses.kl_penalised_rewards(dense, kl, response_mask, beta=0.1)
    torch.testing.assert_close(paid, torch.tensor([[-0.05, 0.85, -0.05, 0.15, 0.0]]))


def test_step_token_ends_finds_each_steps_last_token(lab_rl):
    from rewardgauge.modeling.loading import load_tokenizer
    from rewardgauge.train.rollout import step_token_ends

    tokenizer = load_tokenizer(lab_rl["policy"])
    text = "2 * 3 = 6 . 4 + 6 = 10 . answer 10 ."
    tokens = tokenizer(text, add_special_tokens=False)["input_ids"]
    words = tokenizer.convert_ids_to_tokens(tokens)
    periods = [i for i, w in enumerate(words) if w == "."]
    assert len(periods) == 3
    assert step_token_ends(tokenizer, [tokens], [tokenizer.decode(tokens)], " . ") == [periods]
    assert step_token_ends(tokenizer, [tokens[:2]], [""], " . ") == [[]]


def test_rl_against_a_prm_pays_its_aggregate(lab_rl, lab_prm, tmp_path):
    from rewardgauge.rewards.loading import load_reward_model

    out = tmp_path / "agg"
    run_rl(_cfg(lab_rl, lab_prm, out))
    row = _lines(out / "metrics.jsonl")[0]
    assert row["steps_per_response"] > 0 and 0 <= row["reward_mean"] <= 1
    samples = _lines(out / "samples.jsonl")
    prm = load_reward_model(str(lab_prm), device="cpu")
    rescored = prm.score([s["prompt"] for s in samples], [s["response"] for s in samples]).reward
    assert [s["reward"] for s in samples] == pytest.approx(rescored.tolist(), abs=1e-4)


@pytest.mark.parametrize("algo", ["grpo", "ppo"])
def test_rl_with_a_dense_prm_reward_changes_the_update(lab_rl, lab_prm, tmp_path, algo):
    """The same samples (same seed and policy) give another loss when each step is rewarded where it ends."""
    extra = {"kl.placement": "reward"} if algo == "ppo" else {}
    outcome = run_rl(_cfg(lab_rl, lab_prm, tmp_path / "outcome", algo=algo, **extra))
    dense = run_rl(_cfg(lab_rl, lab_prm, tmp_path / "dense", algo=algo, **{"reward.dense": True}, **extra))
    assert dense.last_metrics["reward_mean"] == pytest.approx(outcome.last_metrics["reward_mean"])
    # PPO's whitened advantages give a first policy loss of 0 either way: the gradient tells them apart
    assert dense.last_metrics["grad_norm"] != pytest.approx(outcome.last_metrics["grad_norm"], rel=1e-4)
    for value in dense.last_metrics.values():
        assert value is None or value == value  # no NaN anywhere


def test_dense_reward_needs_a_prm_and_a_per_step_algorithm(lab_rl, lab_prm, tmp_path, capsys):
    out = tmp_path / "o"
    base = ["rl", "--prompts", str(lab_rl["prompts"]), "--policy.model", str(lab_rl["policy"]), "--out", str(out),
            "--steps", "1", "--no-progress", "--reward.dense"]
    cases = [(["--reward.models", "lab-gold"], "needs one process reward model"),
             (["--reward.models", str(lab_prm), "--algo", "rloo"], "reward.dense is for ppo, grpo and dr_grpo"),
             (["--reward.models", str(lab_prm), "--kl.placement", "reward"], "needs kl.placement loss")]
    for extra, message in cases:
        code = main(base + extra)
        err = capsys.readouterr().err.strip()
        assert code == 2 and message in err and len(err.splitlines()) == 1, (extra, err)
        assert not out.exists()
