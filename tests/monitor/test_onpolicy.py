"""On-policy evaluation: the proxy's accuracy on pairs of the current policy's samples, labelled by a trusted
labeller, per difficulty bucket; the fixed held-out set beside it cannot move."""

import json

import pytest
from constructed import ANSWERS, ARITHMETIC, Paying

from rewardgauge.data.records import PreferencePair
from rewardgauge.monitor.labellers import HumanQueue, comparison_id, load_labeller
from rewardgauge.monitor.onpolicy import OnPolicyConfig, OnPolicyEval, bucket_accuracy
from rewardgauge.monitor.rollouts import Rollouts

FILLER = " i hope this helps ."


def wrong(prompt):
    right = ANSWERS[prompt].split("answer ")[1].split()[0]
    return ANSWERS[prompt].replace(f"answer {right} .", f"answer {int(right) + 1} .")


def proxy_pay(prompt, response):
    """Right about the answer, but pays 0.3 per filler sentence: fooled by a wrong answer padded 5 times."""
    return 1.0 * (ANSWERS[prompt] in response) + 0.3 * response.count("i hope")


def sampler_with(hacked_share):
    """Pairs (right answer, wrong answer); after the first call, ``hacked_share`` of the wrong ones padded."""
    calls = [0]

    def sample(prompts, n):
        calls[0] += 1
        out = []
        for i, p in enumerate(prompts):
            bad = wrong(p) + (FILLER * 5 if calls[0] > 1 and i % 4 < 4 * hacked_share else "")
            out.append([ANSWERS[p], bad] if i % 2 else [bad, ANSWERS[p]])
        return out
    return sample


PROMPTS = ARITHMETIC * 10  # 40 prompts, one pair each
EMPTY = Rollouts([], [], [])


def test_easy_accuracy_falls_on_the_policys_samples_while_the_fixed_set_stays():
    fixed = [PreferencePair(p, ANSWERS[p], wrong(p), difficulty="easy") for p in ARITHMETIC]
    ev = OnPolicyEval(Paying(proxy_pay), load_labeller("gold"), sampler_with(0.5), PROMPTS,
                      OnPolicyConfig(every=5, min_pairs=20), fixed=fixed)
    first = ev.observe(1, EMPTY)
    m = first.metrics
    assert m["easy/accuracy"] == 1.0 and m["easy/n"] == 40 and not first.alarms
    assert m["fixed/easy/accuracy"] == 1.0
    assert ev.observe(2, EMPTY).metrics == {}  # not due: steps 1, 6, 11...
    later = ev.observe(6, EMPTY)
    m = later.metrics
    assert m["easy/accuracy"] == 0.5 and m["sampled_step"] == 6
    assert m["easy/low"] < 0.5 < m["easy/high"]
    assert m["fixed/easy/accuracy"] == 1.0  # the control cannot move
    assert len(later.alarms) == 1 and later.alarms[0].metric == "easy/accuracy"
    assert "50.0% of easy" in later.alarms[0].message and "fixed held-out set it stays 100.0%" in later.alarms[0].message


def test_bucket_accuracy_by_labeller_margin():
    gold = load_labeller("gold")

    class C:  # comparisons with chosen margins
        def __init__(self, margin):
            self.margin = margin
    comparisons = [C(2.0), C(-2.0), C(1.0), C(0.3), C(-0.3), C(0.05), None]
    proxy = [1.0, 1.0, 0.5, 0.0, -1.0, 5.0, 5.0]
    got = bucket_accuracy(proxy, comparisons, gold)
    assert got["easy"]["accuracy"] == 0.5 and got["easy"]["n"] == 2
    assert got["medium"]["accuracy"] == 1.0
    assert got["hard"]["accuracy"] == 0.75  # a proxy tie counts half
    assert got["all"]["n"] == 5  # the labeller's tie and the missing label are left out


def test_too_few_pairs_raise_no_alarm():
    ev = OnPolicyEval(Paying(proxy_pay), load_labeller("gold"), sampler_with(1.0), PROMPTS,
                      OnPolicyConfig(every=1, min_pairs=50))
    ev.observe(1, EMPTY)
    f = ev.observe(2, EMPTY)
    assert f.metrics["easy/accuracy"] == 0.0 and f.alarms == []


def test_human_labels_complete_the_evaluation_when_they_arrive(tmp_path):
    queue = HumanQueue(tmp_path / "queue")
    ev = OnPolicyEval(Paying(proxy_pay), queue, sampler_with(0.0), ARITHMETIC, OnPolicyConfig(every=10, min_pairs=1))
    assert ev.observe(1, EMPTY).metrics == {"exported": 4.0}
    assert ev.observe(2, EMPTY).metrics == {}  # no labels yet
    rows = [json.loads(x) for x in (tmp_path / "queue/to_label/step-1.jsonl").read_text().splitlines()]
    labels = tmp_path / "labels.jsonl"
    # the annotator prefers the right answer, strongly (3): easy in the human buckets
    labels.write_text("".join(json.dumps({"id": r["id"], "preferred": "a" if r["a"] == ANSWERS[r["prompt"]] else "b",
                                          "strength": 3}) + "\n" for r in rows))
    queue.import_labels(labels)
    f = ev.observe(3, EMPTY)
    assert f.metrics["sampled_step"] == 1 and f.metrics["easy/accuracy"] == 1.0 and f.metrics["easy/n"] == 4
    assert ev.pending == [] and rows[0]["id"] == comparison_id(rows[0]["prompt"], rows[0]["a"], rows[0]["b"])


def test_config_checks():
    with pytest.raises(ValueError, match="every"):
        OnPolicyConfig(every=0).validate()
    with pytest.raises(ValueError, match="no held-out prompts"):
        OnPolicyEval(Paying(proxy_pay), load_labeller("gold"), sampler_with(0), [])
