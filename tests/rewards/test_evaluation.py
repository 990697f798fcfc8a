import json
import math

import pytest
import torch

from rewardgauge.cli import main
from rewardgauge.data.records import PreferencePair
from rewardgauge.rewards.base import RewardModel, Scores
from rewardgauge.rewards.evaluation import (
    Bars,
    difficulty_from_votes,
    evaluate,
    expected_calibration_error,
    format_report,
)


class _Table(RewardModel):
    """Reward looked up from a dict; aspects: 'len' = response length."""

    def __init__(self, table):
        self.table = table

    def score_batch(self, prompts, responses, meta):
        return Scores(reward=torch.tensor([self.table[r] for r in responses], dtype=torch.float32),
                      aspects={"len": torch.tensor([float(len(r)) for r in responses])})


def _pair(c, r, difficulty=None, **kw):
    return PreferencePair(prompt="p", chosen=c, rejected=r, difficulty=difficulty, **kw)


def test_accuracy_by_bucket_and_bars():
    rm = _Table({"a": 2.0, "b": 0.0, "c": 1.0, "d": 1.0, "e": -1.0})
    pairs = [_pair("a", "b", "easy"), _pair("a", "e", "easy"), _pair("b", "a", "easy"),  # 2/3 easy
             _pair("c", "d", "hard"),  # exact tie counts half
             _pair("c", "e", "hard", source="x")]
    rep = evaluate(rm, pairs, Bars(easy=0.9, hard=0.6))
    assert rep.n == 5 and rep.accuracy == pytest.approx((1 + 1 + 0 + 0.5 + 1) / 5)
    # easy margins 2, 3, -2: confidences s(2) = 0.8808 (twice: one right, one wrong) in bin [0.85, 0.9) and
    # s(3) = 0.9526 (right) in bin [0.95, 1]: ECE = 2/3 |0.5 - s(2)| + 1/3 |1 - s(3)|
    s2, s3 = 1 / (1 + math.exp(-2)), 1 / (1 + math.exp(-3))
    assert rep.by_difficulty["easy"] == {"n": 3, "accuracy": pytest.approx(2 / 3),
                                         "ece": pytest.approx(2 / 3 * (s2 - 0.5) + 1 / 3 * (1 - s3))}
    assert rep.by_difficulty["hard"]["accuracy"] == pytest.approx(0.75)
    assert rep.bars["easy"]["passed"] is False and rep.bars["hard"]["passed"] is True and not rep.passed
    assert rep.by_source["x"]["n"] == 1 and rep.by_source["-"]["n"] == 4
    assert "bar easy  >=  90.0%: FAIL" in format_report(rep)


def test_aspect_accuracy_uses_aspect_labels():
    rm = _Table({"aaa": 0.0, "b": 1.0, "cc": 0.0})
    pairs = [_pair("aaa", "b", aspects={"len": 1.0}), _pair("aaa", "cc", aspects={"len": 0.0}),
             _pair("b", "cc", aspects={"len": 0.5})]  # 0.5 = tie on the aspect: not counted
    rep = evaluate(rm, pairs)
    assert rep.by_aspect["len"] == {"n": 2, "accuracy": 0.5}


def test_difficulty_derived_from_votes_when_absent():
    assert difficulty_from_votes(_pair("a", "b", votes=[1, 1, 1, 1, 1])) == "easy"
    assert difficulty_from_votes(_pair("a", "b", votes=[1, 1, 1, 1, 0])) == "medium"
    assert difficulty_from_votes(_pair("a", "b", votes=[1, 1, 0])) == "hard"
    assert difficulty_from_votes(_pair("a", "b")) is None
    rm = _Table({"a": 1.0, "b": 0.0})
    rep = evaluate(rm, [_pair("a", "b", votes=[1, 1, 1]), _pair("b", "a", vote_fraction=0.6)])
    assert rep.difficulty_origin == "votes"
    assert rep.by_difficulty["easy"]["accuracy"] == 1.0 and rep.by_difficulty["hard"]["accuracy"] == 0.0
    assert "derived from the annotators' vote agreement" in format_report(rep)
    # a pair without votes among voted ones is in no bucket, and the report says how many
    rep = evaluate(rm, [_pair("a", "b", votes=[1, 1, 1]), _pair("b", "a")])
    assert rep.unbucketed == 1 and "1 of 2 pairs (no votes) are in no bucket" in format_report(rep)


def test_data_without_difficulty_or_votes_says_so():
    rep = evaluate(_Table({"a": 1.0, "b": 0.0}), [_pair("a", "b"), _pair("b", "a")])
    assert rep.difficulty_origin == "none" and rep.by_difficulty == {} and rep.unbucketed == 2
    text = format_report(rep)
    assert "neither a 'difficulty' nor 'votes' on any pair" in text and "vote agreement" not in text
    assert "bar easy  >=  90.0%: n/a" in text


def test_ece_hand_computed():
    # margin 0 -> confidence 0.5, counted half right: no error. Large right margins: confidence ~1, right.
    assert expected_calibration_error(torch.tensor([0.0, 20.0, 30.0])) == pytest.approx(0.0, abs=1e-6)
    # two pairs with p = sigmoid(ln 3) = 0.75, one right and one wrong: accuracy 0.5, confidence 0.75
    m = torch.tensor([math.log(3.0), -math.log(3.0)])
    assert expected_calibration_error(m) == pytest.approx(abs(0.5 - 0.75))  # one bin: 50 % right at 75 %
    m = torch.tensor([math.log(3.0), math.log(3.0), math.log(3.0), -math.log(3.0)])
    assert expected_calibration_error(m) == pytest.approx(0.0, abs=1e-6)  # 75 % right at 75 % confidence


# Pairs in the lab language whose gold utilities are hand-computed (tests/lab/test_lab.py): gold ranks a
# "right" pair correctly and a "wrong" one (the same responses swapped) incorrectly.
_PROMPT, _GOOD, _BAD = "compute 7 + 5 * 3 .", "answer 22 .", "certainly !"  # gold utility 2.0 and -1.5


def _bucketed_pairs(path, wrong: dict[str, int], n: int = 10):
    """n pairs per difficulty bucket, of which wrong[bucket] are labelled against gold."""
    rows = []
    for bucket in ("easy", "medium", "hard"):
        for i in range(n):
            chosen, rejected = (_BAD, _GOOD) if i < wrong.get(bucket, 0) else (_GOOD, _BAD)
            rows.append({"id": f"{bucket}{i}", "prompt": _PROMPT, "chosen": chosen, "rejected": rejected,
                         "difficulty": bucket})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _eval_cli(data, out, *flags):
    return main(["rm", "eval", "--model", "lab-gold", "--data", str(data), "--json", "--out", str(out), *flags])


def test_cli_eval_buckets_and_default_bars_with_known_errors(tmp_path, capsys):
    data = _bucketed_pairs(tmp_path / "pairs.jsonl", {"easy": 2, "hard": 3})
    assert _eval_cli(data, tmp_path / "a.json") == 0  # bars are reported, not enforced, without the flag
    printed = json.loads(capsys.readouterr().out)
    assert printed["accuracy"] == pytest.approx(25 / 30)
    assert {b: (r["n"], r["accuracy"]) for b, r in printed["by_difficulty"].items()} == {
        "easy": (10, pytest.approx(0.8)), "medium": (10, 1.0), "hard": (10, pytest.approx(0.7))}
    assert printed["bars"] == {"easy": {"bar": 0.9, "accuracy": pytest.approx(0.8), "passed": False},
                               "hard": {"bar": 0.6, "accuracy": pytest.approx(0.7), "passed": True}}
    assert printed["passed"] is False and json.loads((tmp_path / "a.json").read_text()) == printed
    assert _eval_cli(data, tmp_path / "b.json", "--fail-on-bars") == 1  # easy 80 % < 90 %
    capsys.readouterr()
    # exactly at the default bars passes: easy 9/10 = 90 %, hard 6/10 = 60 %
    at_bars = _bucketed_pairs(tmp_path / "at.jsonl", {"easy": 1, "hard": 4})
    assert _eval_cli(at_bars, tmp_path / "c.json", "--fail-on-bars") == 0
    assert json.loads(capsys.readouterr().out)["passed"] is True
    # the hard bar alone: easy all right, hard 5/10 = 50 % < 60 %
    hard = _bucketed_pairs(tmp_path / "hard.jsonl", {"hard": 5})
    assert _eval_cli(hard, tmp_path / "d.json", "--fail-on-bars") == 1
    printed = json.loads(capsys.readouterr().out)
    assert printed["bars"]["easy"]["passed"] is True and printed["bars"]["hard"]["passed"] is False
    # bars given on the command line replace the defaults
    assert _eval_cli(hard, tmp_path / "e.json", "--fail-on-bars", "--hard-bar", "0.5") == 0
    capsys.readouterr()


def test_cli_eval_missing_data(tmp_path, capsys):
    assert main(["rm", "eval", "--model", "lab-gold", "--data", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl: no such file" in capsys.readouterr().err


def test_reliability_bins_match_ece():
    from rewardgauge.rewards.evaluation import reliability_bins

    # p = 0.75 (bin [0.75, 0.8)): 3 of 4 right; p ~ 1 (bin [0.95, 1]): right; margin 0 (bin [0.5, 0.55)): half
    m = torch.tensor([math.log(3.0)] * 3 + [-math.log(3.0), 30.0, 0.0])
    bins = reliability_bins(m)
    assert [(b["lo"], b["hi"], b["n"]) for b in bins] == [(0.5, 0.55, 1), (0.75, 0.8, 4), (0.95, 1.0, 1)]
    assert [b["accuracy"] for b in bins] == [0.5, 0.75, 1.0]
    assert bins[1]["confidence"] == pytest.approx(0.75)
    ece = sum(b["n"] / 6 * abs(b["accuracy"] - b["confidence"]) for b in bins)
    assert ece == pytest.approx(expected_calibration_error(m))
    rm = _Table({"a": 1.0, "b": 0.0})
    rep = evaluate(rm, [_pair("a", "b", "easy"), _pair("b", "a", "hard")])
    assert rep.to_dict()["calibration"] == reliability_bins(torch.tensor([1.0, -1.0]))
