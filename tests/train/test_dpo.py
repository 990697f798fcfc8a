import json

import pytest
import torch

from rewardgauge.cli import main
from rewardgauge.data.io import load_pairs
from rewardgauge.rewards.loading import load_reward_model
from rewardgauge.train.config import DPOConfig
from rewardgauge.train.dpo import run_dpo


def _cfg(lang, out, **kw):
    base = dict(model=str(lang["model"]), data=str(lang["train"]), out=str(out), max_steps=12, batch_size=16,
                lr=3e-3, beta=0.1, save_every=0, progress=False, warmup_ratio=0.0)
    return DPOConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def dpo_run(lang, tmp_path_factory):
    out = tmp_path_factory.mktemp("dpo") / "run"
    result = run_dpo(_cfg(lang, out))
    return out, result


def test_dpo_learns_the_preferences_and_saves_an_implicit_reward(lang, dpo_run):
    out, result = dpo_run
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and {"loss", "reward_margin", "accuracy", "logp_chosen"} <= set(rows[0])
    # at step 1 the policy is its reference: every implicit reward is 0 and the loss is log 2
    assert rows[0]["loss"] == pytest.approx(0.693147, abs=1e-4) and rows[0]["reward_margin"] == pytest.approx(0, abs=1e-5)
    assert rows[-1]["loss"] < 0.6 and rows[-1]["reward_margin"] > 0
    spec = json.loads((out / "dpo.json").read_text())
    assert spec["beta"] == 0.1 and spec["loss"] == "sigmoid" and not spec["reference"].startswith("/")

    reward = load_reward_model(str(out))
    pairs = load_pairs(lang["heldout"])
    chosen = reward.score([p.prompt for p in pairs], [p.chosen for p in pairs])
    rejected = reward.score([p.prompt for p in pairs], [p.rejected for p in pairs])
    assert (chosen.reward > rejected.reward).float().mean() > 0.7  # it generalises to held-out pairs
    # reward = beta * (logp_policy - logp_reference), and the reference is the untouched starting model
    torch.testing.assert_close(chosen.reward, 0.1 * (chosen.aspects["logp_policy"] - chosen.aspects["logp_reference"]))


def test_implicit_reward_of_the_reference_itself_is_zero(lang, dpo_run, tmp_path):
    import shutil

    out, _ = dpo_run
    same = tmp_path / "same"
    shutil.copytree(lang["model"], same)
    (same / "dpo.json").write_text(json.dumps({"beta": 0.5, "reference": str(lang["model"])}))
    pairs = load_pairs(lang["heldout"])[:8]
    scores = load_reward_model(str(same)).score([p.prompt for p in pairs], [p.chosen for p in pairs])
    assert scores.reward.abs().max() < 1e-5 and scores.aspects["logp_policy"].max() < 0


def test_ipo_and_conservative_losses_start_where_expected(lang, tmp_path):
    for loss in ("ipo", "conservative"):
        result = run_dpo(_cfg(lang, tmp_path / loss, loss=loss, max_steps=3))
        assert result.steps == 3
    first = json.loads((tmp_path / "ipo" / "metrics.jsonl").read_text().splitlines()[0])
    assert first["loss"] == pytest.approx((0 - 1 / (2 * 0.1)) ** 2, rel=1e-4)  # h = 0 at the start: (1/(2β))²


def test_shared_prompt_gives_the_plain_loss(lang, tmp_path):
    a = run_dpo(_cfg(lang, tmp_path / "a", max_steps=3, layout="packed"))
    b = run_dpo(_cfg(lang, tmp_path / "b", max_steps=3, layout="plain"))
    for key in ("loss", "reward_margin"):
        assert a.last_metrics[key] == pytest.approx(b.last_metrics[key], abs=2e-4)


def test_dpo_bad_input_is_one_line_and_exit_2(lang, tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code = main(["dpo", "--model", str(lang["model"]), "--data", str(empty), "--out", str(tmp_path / "o"),
                 "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "no preference pairs" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()
    code = main(["dpo", "--model", str(lang["model"]), "--data", str(lang["train"]), "--out", str(tmp_path / "o"),
                 "--beta", "0"])
    assert code == 2 and "beta must be positive" in capsys.readouterr().err
