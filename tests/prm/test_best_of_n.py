"""Best-of-N reranking: by hand on small cases, majority vote, PRM aggregations, and the `bon` command."""

import json

import numpy as np
import pytest
import torch

from rewardgauge.cli import main
from rewardgauge.rewards.base import RewardModel, Scores
from rewardgauge.rewards.best_of_n import (
    SampleSet,
    compare,
    draw_subsets,
    majority_vote_accuracy,
    method_scores,
    powers_of_two,
    rerank_accuracy,
)


def test_subsets_are_random_n_subsets():
    subsets = draw_subsets(2, 5, [1, 3, 5], draws=50, seed=0)
    assert subsets[3].shape == (2, 50, 3)
    assert all(len(set(row)) == 3 for row in subsets[3].reshape(-1, 3).tolist())
    assert sorted(subsets[5][0, 0].tolist()) == [0, 1, 2, 3, 4]
    assert np.array_equal(subsets[3], draw_subsets(2, 5, [1, 3, 5], draws=50, seed=0)[3])
    with pytest.raises(ValueError):
        draw_subsets(1, 4, [8], 2, 0)
    assert powers_of_two(64) == [1, 2, 4, 8, 16, 32, 64] and powers_of_two(6) == [1, 2, 4]


def test_rerank_by_hand():
    scores = np.array([[0.1, 0.9, 0.5]])
    correct = np.array([[False, True, False]])
    acc = rerank_accuracy(scores, correct, draw_subsets(1, 3, [1, 2, 3], draws=6000, seed=1))
    # N=2: of the subsets {0,1} {0,2} {1,2}, the pick is right in two
    assert acc[3] == 1.0 and acc[2] == pytest.approx(2 / 3, abs=0.02) and acc[1] == pytest.approx(1 / 3, abs=0.02)
    flat = rerank_accuracy(np.zeros((1, 3)), correct, draw_subsets(1, 3, [3], draws=6000, seed=1))
    assert flat[3] == pytest.approx(1 / 3, abs=0.02)  # ties go to the first drawn: no better than chance


def test_majority_vote_by_hand():
    answers = [["5", "5", "7", None]]
    correct = np.array([[False, False, True, False]])
    subsets = draw_subsets(1, 4, [1, 4], draws=4000, seed=2)
    acc = majority_vote_accuracy(answers, correct, subsets)
    assert acc[4] == 0.0 and acc[1] == pytest.approx(0.25, abs=0.02)
    # a tie between answers goes to the one drawn first
    tied = majority_vote_accuracy([["5", "7"]], np.array([[False, True]]), {2: np.array([[[1, 0], [0, 1]]])})
    assert tied[2] == 0.5


class StepsModel(RewardModel):
    """A fake PRM: each response's step scores are written in it ("0.9 0.2")."""

    def score_batch(self, prompts, responses, meta):
        steps = [torch.tensor([float(x) for x in r.split()]) for r in responses]
        return Scores(reward=torch.stack([s.min() for s in steps]), steps=steps)


def test_prm_is_reranked_once_per_aggregation():
    sets = [SampleSet("p", ["0.9 0.2", "0.6 0.6", "0.2 0.99"])]
    got = method_scores(StepsModel(), sets, "prm", ["min", "product", "last", "mean"])
    assert list(got) == ["prm:min", "prm:product", "prm:last", "prm:mean"]
    assert got["prm:min"][0].tolist() == pytest.approx([0.2, 0.6, 0.2])
    assert got["prm:last"].argmax() == 2 and got["prm:mean"].argmax() == 1 and got["prm:product"].argmax() == 1
    result = compare(got, np.array([[False, True, False]]), [["1", "2", "1"]], [1, 3], 100, 0)
    assert result["methods"]["prm:min"][3] == 1.0 and result["methods"]["prm:last"][3] == 0.0
    assert result["methods"]["majority"][3] == 0.0 and result["oracle"][3] == 1.0
    assert result["random"] == pytest.approx(1 / 3)


def test_bon_command_with_gold_and_majority(tmp_path, capsys):
    samples = tmp_path / "samples.jsonl"
    rows = [{"prompt": "compute 2 + 3 .", "responses": ["2 + 3 = 5 . answer 5 .", "answer 6 .", "answer 6 .",
                                                        "2 + 3 = 6 . answer 5 ."]},
            {"prompt": "compute 2 * 2 .", "responses": ["answer 4 .", "2 * 2 = 4 . answer 4 .", "answer 3 .",
                                                        "answer 3 ."]}]
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "bon"
    assert main(["bon", "--samples", str(samples), "--rewards", "lab-gold", "--checker", "lab-steps",
                 "--separator", " . ", "--out", str(out), "--draws", "400"]) == 0
    result = json.loads((out / "bon.json").read_text())
    # right with every step: prompt 1 only sample 0, prompt 2 samples 0 and 1 -> 3 of 8
    assert result["random"] == pytest.approx(3 / 8) and result["ns"] == [1, 2, 4]
    assert result["methods"]["lab-gold"]["4"] == 1.0 and result["oracle"]["4"] == 1.0
    # majority at N=4: "6" vs "5" tie on prompt 1 (first drawn wins), "4" vs "3" tie on prompt 2
    assert 0.0 < result["methods"]["majority"]["4"] < 1.0
    assert "lab-gold" in capsys.readouterr().out
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(rows[0]) + "\n" + json.dumps({"prompt": "x", "responses": ["a"]}) + "\n")
    assert main(["bon", "--samples", str(bad), "--out", str(out), "--checker", "lab"]) == 2
    assert f"{bad}:2: field 'responses': has 1 responses; earlier prompts have 4" in capsys.readouterr().err


def test_bon_samples_from_a_policy(prm_lab, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "compute 1 + 1 .", "reference": 2}\n{"prompt": "compute 2 + 2 .", "reference": 4}\n')
    out = tmp_path / "bon"
    assert main(["bon", "--policy", str(prm_lab["model"]), "--prompts", str(prompts), "--n", "4",
                 "--max-new-tokens", "8", "--out", str(out), "--draws", "10", "--device", "cpu"]) == 0
    sets = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [len(s["responses"]) for s in sets] == [4, 4] and sets[0]["reference"] == "2"
    assert set(json.loads((out / "bon.json").read_text())["methods"]) == {"majority"}
