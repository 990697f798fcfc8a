"""Config dataclasses from YAML and flags: nested sections, spelling, duplicate keys, encoding, non-finite
numbers, choices checked when parsed, help text, and the usage a subcommand's error prints."""

import argparse
import dataclasses
import importlib
from typing import Literal, get_args, get_type_hints

import pytest

from rewardgauge import cli
from rewardgauge.cli import main
from rewardgauge.config import add_config_args, config_from_args, load_config
from rewardgauge.errors import InputError


@dataclasses.dataclass
class _Generation:
    temperature: float = 1.0
    max_new_tokens: int = 32
    stop: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _KL:
    coef: float = 0.05
    estimator: Literal["k1", "k3"] = "k3"
    target: float = dataclasses.field(default=float("inf"), metadata={"allow_nonfinite": True})


@dataclasses.dataclass
class _RL:
    policy: str
    lr: float = 1e-5
    max_steps: int = 10
    generation: _Generation = dataclasses.field(default_factory=_Generation)
    kl: _KL = dataclasses.field(default_factory=_KL)


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_config_args(parser, _RL)
    return config_from_args(_RL, parser.parse_args(argv))


def test_nested_sections_from_yaml_and_flags(tmp_path):
    path = tmp_path / "rl.yaml"
    path.write_text("policy: p\nmax-steps: 5\ngeneration:\n  temperature: 0.7\n  max-new-tokens: 64\n"
                    "kl:\n  estimator: k1\n")
    cfg = load_config(_RL, path)
    assert cfg == _RL(policy="p", max_steps=5, generation=_Generation(temperature=0.7, max_new_tokens=64),
                      kl=_KL(estimator="k1"))
    # flags override one field of a section and keep the others from YAML
    cfg = _parse(["--config", str(path), "--generation.temperature", "0.2", "--kl.coef", "0.1",
                  "--generation.stop", "a,b"])
    assert cfg.generation == _Generation(temperature=0.2, max_new_tokens=64, stop=["a", "b"])
    assert cfg.kl == _KL(coef=0.1, estimator="k1") and cfg.max_steps == 5
    # a section nobody mentions takes its defaults
    assert _parse(["--policy", "q"]) == _RL(policy="q")


@dataclasses.dataclass
class _Alarm:
    severity: str = "warning"
    action: str = "warn"


@dataclasses.dataclass
class _Detector:
    window: int = 8
    alarm: _Alarm = dataclasses.field(default_factory=_Alarm)


@dataclasses.dataclass
class _Monitor:
    # sections whose defaults differ from their class's: setting one field must keep the others
    kl: _Detector = dataclasses.field(default_factory=lambda: _Detector(window=4, alarm=_Alarm("critical", "stop")))
    length: _Detector = dataclasses.field(default_factory=_Detector)


def test_one_field_of_a_customised_section_keeps_the_sections_other_defaults():
    cfg = load_config(_Monitor, overrides={"kl.alarm.action": "rollback"})
    assert cfg.kl == _Detector(window=4, alarm=_Alarm("critical", "rollback"))  # not severity "warning"
    assert cfg.length == _Detector()
    cfg = load_config(_Monitor, overrides={"kl.window": 2})
    assert cfg.kl == _Detector(window=2, alarm=_Alarm("critical", "stop"))
    assert load_config(_Monitor) == _Monitor()


def test_unknown_nested_key_names_the_dotted_field_and_line(tmp_path):
    path = tmp_path / "rl.yaml"
    path.write_text("policy: p\ngeneration:\n  temperature: 0.7\n  temprature: 0.5\n")
    with pytest.raises(InputError) as e:
        load_config(_RL, path)
    assert str(e.value) == (f"{path}:4: field 'generation.temprature': unknown config field "
                            "(known: max_new_tokens, stop, temperature)")
    path.write_text("policy: p\ngeneration: 0.7\n")
    with pytest.raises(InputError, match=r":2: field 'generation': must be a mapping of max_new_tokens, stop, "):
        load_config(_RL, path)
    path.write_text("policy: p\nkl:\n  estimator: k2\n")
    with pytest.raises(InputError, match=r":3: field 'kl.estimator': must be one of \['k1', 'k3'\], got 'k2'"):
        load_config(_RL, path)


def test_duplicate_keys_are_an_error_naming_the_line(tmp_path):
    path = tmp_path / "c.yaml"
    for text, line, key in [("policy: p\nlr: 0.1\nlr: 0.2\n", 3, "lr"),
                            ("policy: p\nmax_steps: 1\nmax-steps: 2\n", 3, "max_steps"),
                            ("policy: p\ngeneration:\n  temperature: 1\n  temperature: 2\n", 4,
                             "generation.temperature")]:
        path.write_text(text)
        with pytest.raises(InputError) as e:
            load_config(_RL, path)
        assert str(e.value) == f"{path}:{line}: field '{key}': duplicate key (first given on line {line - 1})"


def test_a_config_that_is_not_utf8_is_one_line_naming_the_file(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"model: m\ndata: caf\xe9.jsonl\n")
    with pytest.raises(InputError) as e:
        load_config(_RL, path)
    assert str(e.value) == f"{path}:2: not UTF-8 text (byte 0xe9); save the file as UTF-8"
    assert main(["rm", "train", "--config", str(path)]) == 2
    assert capsys.readouterr().err == f"rewardgauge: error: {path}:2: not UTF-8 text (byte 0xe9); save the file as UTF-8\n"


def test_nonfinite_numbers_are_rejected_unless_the_field_allows_them(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    for value in (".nan", ".inf", "-.inf", "nan", "-Infinity"):
        path.write_text(f"policy: p\nlr: {value}\n")
        with pytest.raises(InputError, match=r"c.yaml:2: field 'lr': must be a finite number, got "):
            load_config(_RL, path)
    path.write_text("policy: p\nkl:\n  target: .inf\n")
    assert load_config(_RL, path).kl.target == float("inf")
    with pytest.raises(InputError, match=r"^--generation.temperature: must be a finite number, got 'nan'$"):
        _parse(["--policy", "p", "--generation.temperature", "nan"])
    out = tmp_path / "out"
    for flag, value in (("--lr", "inf"), ("--max-grad-norm", "nan"), ("--lam", "-inf")):
        assert main(["rm", "train", "--model", "m", "--data", "d", "--out", str(out), f"{flag}={value}"]) == 2
        assert capsys.readouterr().err == f"rewardgauge: error: {flag}: must be a finite number, got '{value}'\n"
    assert not out.exists()


def test_choices_are_checked_when_the_command_line_is_parsed(tmp_path, capsys):
    out = tmp_path / "qs"
    assert main(["quickstart", "--out", str(out), "--preset", "huge"]) == 2
    assert capsys.readouterr().err == "rewardgauge: error: --preset: must be one of ['tiny', 'small'], got 'huge'\n"
    assert not out.exists()  # before the lab stage
    assert main(["quickstart", "--out", str(out), "--rm-loss", "hinge"]) == 2
    assert "--rm-loss: must be one of ['bt', 'margin', 'soft', 'multi']" in capsys.readouterr().err
    assert main(["rm", "eval", "--model", "m", "--data", "d", "--aggregator", "max"]) == 2
    assert "--aggregator: must be one of ['mean', 'min', 'mean_minus_std', 'quantile']" in capsys.readouterr().err
    assert not out.exists()


def test_each_set_of_choices_is_declared_once():
    from rewardgauge.modeling.commands import ModelInitConfig
    from rewardgauge.modeling.presets import PRESETS
    from rewardgauge.quickstart import QuickstartConfig
    from rewardgauge.rewards.aggregators import AGGREGATORS, get_aggregator
    from rewardgauge.rewards.commands import RMEvalConfig
    from rewardgauge.rewards.ensemble import FORMS
    from rewardgauge.train.config import RewardTrainConfig

    hints = {cls: get_type_hints(cls) for cls in (ModelInitConfig, QuickstartConfig, RMEvalConfig, RewardTrainConfig)}
    assert get_args(hints[QuickstartConfig]["preset"]) == get_args(hints[ModelInitConfig]["preset"]) == tuple(PRESETS)
    presets = [{f.name: f.default for f in dataclasses.fields(c)}["preset"] for c in (QuickstartConfig, ModelInitConfig)]
    assert presets == ["tiny", "tiny"]  # `model init` and the quickstart agree
    assert get_args(hints[QuickstartConfig]["rm_loss"]) == get_args(hints[RewardTrainConfig]["loss"])
    assert get_args(hints[RewardTrainConfig]["aggregator"]) == AGGREGATORS
    assert get_args(get_args(hints[RMEvalConfig]["aggregator"])[0]) == AGGREGATORS
    assert get_args(hints[RewardTrainConfig]["ensemble_form"]) == FORMS
    for name in AGGREGATORS:  # every choice offered is implemented
        assert callable(get_aggregator(name))


def test_help_shows_each_default_once(capsys):
    for argv in (["rm", "train", "--help"], ["rm", "eval", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        text = " ".join(capsys.readouterr().out.split())
        assert "(default: equal) (default:" not in text and "(default: []" not in text and "(default: {}" not in text
        if argv[1] == "train":
            assert "'{\"accuracy\": 0.7, \"safety\": 0.3}' (default: equal)" in text
            assert "--lam LAM mean_minus_std: weight of the members' std (default: 1.0)" in text
            assert "--quantile QUANTILE quantile aggregator: q in [0, 1] (0 = min) (default: 0.25)" in text
            assert "--report-to {none,tensorboard,trackio,wandb}" in text
        else:
            assert "--lam LAM ensembles, mean_minus_std: weight of the std (default: the one saved in" in text
            assert "--quantile QUANTILE ensembles, quantile aggregator: q in [0, 1] (default: the one saved" in text


def test_a_usage_error_names_the_subcommand_not_the_top_level(capsys):
    assert main(["rm", "train", "--bogus"]) == 2
    assert capsys.readouterr().err == ("rewardgauge: error: unrecognized arguments: --bogus "
                                       "(see rewardgauge rm train --help)\n")
    assert main(["sft", "--bogus", "1"]) == 2
    assert capsys.readouterr().err.endswith("(see rewardgauge sft --help)\n")
    assert main(["rm"]) == 2
    assert capsys.readouterr().err.endswith("(see rewardgauge rm --help)\n")


def test_a_command_module_that_does_not_import_is_an_error_not_a_missing_command(monkeypatch):
    monkeypatch.setattr(cli, "COMMAND_MODULES", [*cli.COMMAND_MODULES, "rewardgauge.train.comands"])
    with pytest.raises(ModuleNotFoundError):
        cli.build_parser()
    importlib.import_module("rewardgauge.train.commands")
