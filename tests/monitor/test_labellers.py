"""Labellers: a reward as judge, the lab's gold by name, and the human queue's files."""

import csv
import json

import pytest
from constructed import Paying

from rewardgauge.errors import InputError
from rewardgauge.monitor.labellers import (
    Buckets,
    HumanQueue,
    RewardLabeller,
    comparison_id,
    load_labeller,
)


def test_reward_labeller_margin_and_probability():
    judge = RewardLabeller(Paying(lambda p, r: len(r)), temperature=2.0)
    c = judge.compare("q", "abcd", "ab")
    assert c.margin == 2.0 and c.p_a == pytest.approx(1 / (1 + 2.718281828 ** -1.0))
    assert [x.margin for x in judge.compare_many(["q", "q"], ["a", "abc"], ["abc", "a"])] == [-2.0, 2.0]


def test_gold_labeller_is_the_lab_gold_by_name():
    gold = load_labeller("gold")
    c = gold.compare("compute 1 + 2 .", "1 + 2 = 3 . answer 3 .", "1 + 2 = 4 . answer 4 .")
    assert c.margin == pytest.approx(4.0) and c.p_a > 0.95  # (2 + 0.5) - (-1 - 0.5): the gold reward gap
    assert Buckets().of(c.margin) == "easy" and Buckets().of(0.3) == "hard" and Buckets().of(0.1) is None
    with pytest.raises(InputError, match="unknown labeller"):
        load_labeller("oracle")


def test_human_queue_exports_then_uses_labels_when_they_arrive(tmp_path):
    queue = HumanQueue(tmp_path / "queue")
    prompts, a, b = ["q1", "q2", "q3"], ["a1", "a2", "a3"], ["b1", "b2", "b3"]
    assert queue.compare_many(prompts, a, b, step=5) == [None, None, None]
    exported = [json.loads(x) for x in (tmp_path / "queue/to_label/step-5.jsonl").read_text().splitlines()]
    assert [r["id"] for r in exported] == [comparison_id(p, x, y) for p, x, y in zip(prompts, a, b)]
    with open(tmp_path / "queue/to_label/step-5.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["response_a"] for r in rows] == a and rows[0]["preferred"] == ""
    # asking again exports nothing new
    queue.compare_many(prompts, a, b, step=6)
    assert not (tmp_path / "queue/to_label/step-6.jsonl").exists()

    # annotators fill in the CSV: two label the first comparison, one the second; the third is left empty
    rows[0].update(preferred="a", strength="3", annotator="ann1")
    rows[1].update(preferred="B", annotator="ann1")
    extra = dict(rows[0], preferred="tie", annotator="ann2", strength="")
    filled = tmp_path / "done.csv"
    with open(filled, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows([rows[0], rows[1], rows[2], extra])
    assert queue.import_labels(filled) == 3
    got = HumanQueue(tmp_path / "queue").compare_many(prompts, a, b)
    assert got[0].p_a == 0.75 and got[0].margin == 1.5  # (a with strength 3 + tie) / 2
    assert got[1].p_a == 0.0 and got[1].margin == -1.0
    assert got[2] is None


def test_human_queue_rejects_bad_label_files(tmp_path):
    queue = HumanQueue(tmp_path / "queue")
    queue.export(["q"], ["a"], ["b"], step=1)
    key = comparison_id("q", "a", "b")
    bad = tmp_path / "bad.jsonl"
    cases = [({"id": key, "preferred": "maybe"}, "bad.jsonl:1: field 'preferred'"),
             ({"id": key, "preferred": "a", "strength": -1}, "field 'strength'"),
             ({"preferred": "a"}, "field 'id'"),
             ({"id": "0000", "preferred": "a"}, "never exported")]
    for row, message in cases:
        bad.write_text(json.dumps(row) + "\n")
        with pytest.raises(InputError, match=message.replace("(", r"\(")):
            queue.import_labels(bad)
    assert not (tmp_path / "queue/labels").exists()  # nothing imported


def test_cli_import_and_status(tmp_path, capsys):
    from rewardgauge.cli import main

    queue = HumanQueue(tmp_path / "q")
    queue.export(["q1", "q2"], ["a1", "a2"], ["b1", "b2"], step=3)
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    good.write_text(json.dumps({"id": comparison_id("q1", "a1", "b1"), "preferred": "a"}) + "\n")
    bad.write_text(json.dumps({"id": comparison_id("q2", "a2", "b2"), "preferred": "c"}) + "\n")
    assert main(["monitor", "import", "--queue", str(tmp_path / "q"), str(good), str(bad)]) == 2
    assert "bad.jsonl:1: field 'preferred'" in capsys.readouterr().err
    assert not (tmp_path / "q/labels").exists()  # the good file waited for the bad one: nothing half-imported
    assert main(["monitor", "import", "--queue", str(tmp_path / "q"), str(good)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["exported"] == 2 and out["labelled"] == 1 and out["steps_waiting"] == [3]
    assert main(["monitor", "status", "--queue", str(tmp_path / "q")]) == 0
    assert json.loads(capsys.readouterr().out) == {"exported": 2, "labelled": 1, "steps_waiting": [3]}
