import dataclasses
import json
from typing import Literal

import pytest
import torch

from rewardgauge.cli import main
from rewardgauge.config import load_config
from rewardgauge.data.records import PreferencePair
from rewardgauge.errors import InputError
from rewardgauge.io import iter_jsonl, write_jsonl_atomic
from rewardgauge.rewards.base import RewardModel, Scores


@dataclasses.dataclass
class _Cfg:
    data: str
    lr: float = 1e-3
    steps: int = 10
    loss: Literal["bt", "soft"] = "bt"
    members: list[int] = dataclasses.field(default_factory=list)
    flag: bool = False


def test_config_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: x.jsonl\nlr: 0.01\nloss: soft\nmembers: [1, 2]\n")
    cfg = load_config(_Cfg, path, {"steps": "5", "flag": True})
    assert cfg == _Cfg(data="x.jsonl", lr=0.01, steps=5, loss="soft", members=[1, 2], flag=True)


def test_config_errors_name_file_line_field(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: x\nsteps: many\n")
    with pytest.raises(InputError) as e:
        load_config(_Cfg, path)
    assert str(e.value).startswith(f"{path}:2: field 'steps': must be an integer")
    path.write_text("data: x\n\nlerning_rate: 1\n")
    with pytest.raises(InputError, match=r":3: field 'lerning_rate': unknown config field"):
        load_config(_Cfg, path)
    path.write_text("data: x\nloss: hinge\n")
    with pytest.raises(InputError, match=r"must be one of \['bt', 'soft'\]"):
        load_config(_Cfg, path)


def test_config_missing_required_names_the_flag(tmp_path, capsys):
    with pytest.raises(InputError, match=r"^missing required option --data \(or set it in --config\)$"):
        load_config(_Cfg, None, {"lr": 1})
    from rewardgauge.cli import main

    assert main(["rm", "train", "--lr", "1e-3"]) == 2
    assert capsys.readouterr().err == ("rewardgauge: error: missing required options --model, --data, --out (or "
                                       "set them in --config)\n")


def test_jsonl_roundtrip_and_errors(tmp_path):
    path = tmp_path / "a.jsonl"
    assert write_jsonl_atomic(path, [{"a": 1}, {"b": "é"}]) == 2
    assert [o for _, o in iter_jsonl(path)] == [{"a": 1}, {"b": "é"}]
    path.write_bytes(b'{"a": 1}\n{"a": \n')
    with pytest.raises(InputError, match=r"a.jsonl:2: invalid JSON"):
        list(iter_jsonl(path))
    path.write_bytes(b'{"a": 1}\n\n{"a": "\xff"}\n')
    with pytest.raises(InputError, match=r"a.jsonl:3: invalid UTF-8"):
        list(iter_jsonl(path))


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    path = tmp_path / "out.jsonl"

    def rows():
        yield {"a": 1}
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_jsonl_atomic(path, rows())
    assert list(tmp_path.iterdir()) == []


def test_preference_soft_label():
    p = PreferencePair(prompt="q", chosen="a", rejected="b", votes=[1, 1, 0, 1])
    assert p.preference == 0.75 and p.agreement == 0.75
    assert PreferencePair(prompt="q", chosen="a", rejected="b", vote_fraction=0.2).agreement == 0.8
    assert PreferencePair(prompt="q", chosen="a", rejected="b").preference == 1.0
    assert json.loads(json.dumps(p.to_dict()))["votes"] == [1, 1, 0, 1]


class _Len(RewardModel):
    batch_size = 2

    def score_batch(self, prompts, responses, meta):
        return Scores(reward=torch.tensor([float(len(r)) for r in responses]))


def test_reward_model_batches_and_concatenates():
    scores = _Len().score(["p"] * 5, ["a", "bb", "ccc", "dddd", "eeeee"])
    assert scores.reward.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    with pytest.raises(ValueError):
        _Len().score(["p"], [])


def test_cli_help_exits_zero(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "rewardgauge" in capsys.readouterr().out
