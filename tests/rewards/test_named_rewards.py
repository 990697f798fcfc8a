"""Named reward specs come from the ``rewardgauge.rewards`` entry points, so rewards/ imports nothing above it."""

import pytest

from rewardgauge.errors import InputError
from rewardgauge.lab.gold import GoldReward
from rewardgauge.rewards.loading import load_reward_model, named_rewards


def test_lab_gold_is_registered_by_the_lab():
    assert named_rewards()["lab-gold"].value == "rewardgauge.lab.gold:load_gold_reward"
    gold = load_reward_model("lab-gold")
    assert isinstance(gold, GoldReward) and not gold.strict  # lenient: text outside the language is scored
    assert gold.score(["compute 2 + 3 ."], ["hello world ."]).reward.item() == -2.5


def test_named_reward_options_and_folders(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="ensemble folders"):
        load_reward_model("lab-gold", aggregator="min")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lab-gold").mkdir()  # a folder of that name is a folder, not the named reward
    with pytest.raises(InputError, match="not a Hugging Face model folder"):
        load_reward_model("lab-gold")
