"""The Monitor: runs its detectors, names their metrics, emits alarms as they happen, and resumes."""

import json
import random

import pytest
import torch
from constructed import Paying, batch, rollouts

from rewardgauge.audit.commands import lab_phrases
from rewardgauge.audit.patterns import style_patterns
from rewardgauge.io import append_jsonl
from rewardgauge.monitor import AlarmSink, Monitor, MonitorConfig, Rollouts
from rewardgauge.monitor.build import build_monitor
from rewardgauge.monitor.detectors import GoldGapDetector, LengthDetector, StyleDetector


def pay(prompt, response):
    return 1.0 * response.startswith("certainly") + 0.01 * len(response.split())


def hacked_run(n_steps=14, seed=0):
    """Openers and filler spread from step 5; gold (content fixed, filler costs) peaks, then falls."""
    rng = random.Random(seed)
    proxy = Paying(pay)
    for step in range(1, n_steps + 1):
        rise = max(0, step - 5) * 0.1
        prompts, responses = batch(rng, 64, p_opener=0.1 + rise, mean_filler=0.1 + rise)
        gold = torch.tensor([0.05 * min(step, 6) - 0.2 * r.count("i hope") for r in responses])
        yield step, rollouts(prompts, responses, proxy, gold=gold, metrics={"kl_k1": 0.5 * step})


def make_monitor(lines, write_to=None):
    proxy = Paying(pay)
    sink = AlarmSink(write=None if write_to is None else lambda rows: [append_jsonl(write_to, r) for r in rows],
                     echo=lines.append)
    return Monitor([LengthDetector(), StyleDetector(style_patterns(lab_phrases()), proxy), GoldGapDetector()], sink)


def test_monitor_names_metrics_and_emits_alarms_as_they_happen(tmp_path):
    lines = []
    monitor = make_monitor(lines, write_to=tmp_path / "alarms.jsonl")
    seen = []
    for step, r in hacked_run():
        obs = monitor.observe(step, r)
        seen.append(obs)
        assert len(lines) == len(monitor.alarms)  # printed when raised, not at the end
    first = seen[0].metrics
    assert {"monitor/length/length_mean", "monitor/style/opener/freq", "monitor/gold_gap/gold_mean"} <= set(first)
    detectors = {a.detector for a in monitor.alarms}
    assert {"style", "gold_gap"} <= detectors
    rows = [json.loads(x) for x in (tmp_path / "alarms.jsonl").read_text().splitlines()]
    assert rows == [a.to_dict() for a in monitor.alarms]
    assert all(line.startswith("[monitor] step ") for line in lines)
    gold = next(o for o in seen if any(a.detector == "gold_gap" for a in o.alarms))
    assert gold.action == "rollback" and gold.rollback_to is not None and gold.rollback_to < gold.step


def test_monitor_resumes_to_the_same_alarms():
    steps = list(hacked_run())
    whole = make_monitor([])
    for step, r in steps:
        whole.observe(step, r)
    first = make_monitor([])
    for step, r in steps[:7]:
        first.observe(step, r)
    state = json.loads(json.dumps(first.state_dict()))  # as a checkpoint stores it
    resumed = make_monitor([])
    resumed.load_state_dict(state)
    for step, r in steps[7:]:
        resumed.observe(step, r)
    assert [a.to_dict() for a in resumed.alarms] == [a.to_dict() for a in whole.alarms]
    assert whole.alarms  # the comparison is about something


def test_monitor_every_and_unique_names():
    monitor = Monitor([LengthDetector()], sink=AlarmSink(echo=None), every=3)
    r = Rollouts(["p"] * 4, ["a b", "a", "a b c", "a"], torch.tensor([1.0, 0.0, 2.0, 0.0]))
    assert [bool(monitor.observe(s, r).metrics) for s in range(1, 7)] == [True, False, True, False, False, True]
    with pytest.raises(ValueError, match="share a name"):
        Monitor([LengthDetector(), LengthDetector()])


def test_build_monitor_says_what_it_left_out():
    cfg = MonitorConfig(enabled=True)
    monitor = build_monitor(cfg, Paying(pay), lab_phrases())
    names = [d.name for d in monitor.detectors]
    assert names == ["length", "style", "disagreement", "gold_gap", "kl"]
    assert set(monitor.skipped) == {"sycophancy", "latent", "onpolicy"}
    with pytest.raises(ValueError, match="kl_raise_factor"):
        MonitorConfig(kl_raise_factor=1.0).validate()
