"""The review queue without a browser: leases, sharing, atomic saves, resuming, agreement statistics."""

import json

import pytest

from rewardgauge.cli import main
from rewardgauge.data.steps import StepRecord, load_step_records, save_step_records
from rewardgauge.errors import InputError
from rewardgauge.review.app import check_bind
from rewardgauge.review.queue import Conflict, ReviewQueue, annotation_stats


def items(n=3):
    return [StepRecord(f"compute {i} + 1 .", [f"{i} + 1 = {i + 1} .", f"answer {i + 1} ."], [True, 0.3],
                       ["proposed", "proposed"], id=f"item-{i}") for i in range(n)]


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_two_sessions_never_get_the_same_item_and_each_item_gets_up_to_n(tmp_path):
    clock = Clock()
    q = ReviewQueue(items(2), tmp_path, per_item=2, lease_seconds=60, clock=clock)
    a = q.next_item("s-ann", "ann")["item"]
    b = q.next_item("s-bob", "bob")["item"]
    assert (a["index"], b["index"]) == (0, 1)  # item 0 is leased to ann's session
    assert q.next_item("s-ann", "ann")["item"]["index"] == 0  # a reload gets the same item back
    assert q.next_item("s-cat", "cat")["item"] is None  # both items are out
    q.submit("s-ann", "ann", 0, [True, True])
    assert q.next_item("s-cat", "cat")["item"]["index"] == 0  # a second annotator for item 0
    assert q.next_item("s-ann", "ann")["item"] is None  # ann may not label item 0 twice, item 1 is bob's
    with pytest.raises(Conflict, match="not leased to this session"):
        q.submit("s-ann", "ann", 1, [True, True])
    clock.now += 61  # bob walked away: his lease expires and the item goes to someone else
    assert q.next_item("s-ann", "ann")["item"]["index"] == 1
    with pytest.raises(Conflict, match="not leased"):
        q.submit("s-bob", "bob", 1, [True, True])
    with pytest.raises(Conflict, match="one true/false label per step"):
        q.submit("s-ann", "ann", 1, [True])


def test_saved_after_every_submission_and_resumed_by_a_new_queue(tmp_path):
    q = ReviewQueue(items(3), tmp_path, per_item=1)
    first = q.next_item("s1", "ann")["item"]
    assert first["proposed"] == [True, 0.3] and first["draft"] is None
    q.save_draft("s1", 0, [True, True], [True, True])
    q.submit("s1", "ann", 0, [True, True])  # flipped the proposal of step 2 (0.3 -> incorrect)
    q.next_item("s1", "ann")
    q.save_draft("s1", 1, [False, None], [True, False])
    # the server stops; a new one over the same folder resumes: item 0 done, the draft of item 1 kept
    again = ReviewQueue(items(3), tmp_path, per_item=1)
    assert [a["labels"] for a in again.annotations] == [[True, True]]
    assert again.next_item("s2", "bob")["item"]["index"] == 1
    assert again.drafts["s1"] == {"index": 1, "labels": [False, None], "reviewed": [True, False], "cursor": 0}
    (verified,) = load_step_records(tmp_path / "verified.jsonl")
    assert verified.id == "item-0" and verified.labels == [True, True] and verified.sources == ["verified"] * 2
    with pytest.raises(InputError, match="does not match the items"):
        ReviewQueue([StepRecord("p", ["only one step"])], tmp_path)


def test_agreement_and_change_rate_by_hand():
    proposed = [True, False, True]
    annotations = [
        {"index": 0, "annotator": "a", "labels": [True, False, True], "proposed": proposed},
        {"index": 0, "annotator": "b", "labels": [True, True, True], "proposed": proposed},
        {"index": 1, "annotator": "a", "labels": [False, False, True], "proposed": proposed},
    ]
    s = annotation_stats(annotations, n_items=2, per_item=2)
    assert s["proposal_steps"] == 9 and s["proposals_changed"] == 2
    assert s["proposal_change_rate"] == pytest.approx(2 / 9)
    assert s["step_pairs"] == 3 and s["step_agreement"] == pytest.approx(2 / 3)
    # pooled pairs (T,T) (F,T) (T,T): p_yes = 5/6, expected agreement = 26/36
    assert s["cohen_kappa"] == pytest.approx((2 / 3 - 26 / 36) / (1 - 26 / 36))
    assert s["complete_items"] == 1 and s["annotators"] == {"a": 2, "b": 1}


def test_majority_and_ties(tmp_path):
    q = ReviewQueue(items(1), tmp_path, per_item=3)
    for session, name, labels in (("1", "a", [False, True]), ("2", "b", [True, True])):
        q.next_item(session, name)
        q.submit(session, name, 0, labels)
    (v,) = q.verified()
    assert v.labels == [True, True]  # step 1 tied 1-1: the proposal (true) stands; step 2: 2 of 2
    q.next_item("3", "c")
    q.submit("3", "c", 0, [False, False])
    assert q.verified()[0].labels == [False, True]


def test_binding_beyond_loopback_needs_a_token(tmp_path, capsys):
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    check_bind("0.0.0.0", "secret")
    with pytest.raises(InputError, match="give --token"):
        check_bind("0.0.0.0", None)
    data = tmp_path / "items.jsonl"
    save_step_records(data, items(2))
    assert main(["prm", "review", "--data", str(data), "--out", str(tmp_path / "q"), "--host", "0.0.0.0"]) == 2
    assert "give --token" in capsys.readouterr().err
    assert main(["prm", "review", "--data", str(data), "--out", str(tmp_path / "q"), "--stats"]) == 0
    assert json.loads(capsys.readouterr().out)["annotations"] == 0
