"""The report's monitor section: alarms on a timeline beside the proxy and gold rewards, read from files only."""

import json
import re
from pathlib import Path

from rewardgauge.report import build_report
from rewardgauge.report.build import make_report


def _write_jsonl(path: Path, rows, tail: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail, encoding="utf-8")


def rl_run(root: Path) -> Path:
    """An RL sub-run as `rewardgauge rl` with a monitor writes it: metrics, alarms and monitor metrics."""
    rl = root / "rl"
    gold = [0.1 * s if s <= 20 else 2.0 - 0.08 * (s - 20) for s in range(1, 41)]
    _write_jsonl(rl / "metrics.jsonl", [{"step": s, "reward_mean": 0.1 * s, "gold_mean": g, "loss": 1.0 / s}
                                        for s, g in zip(range(1, 41), gold)])
    _write_jsonl(rl / "alarms.jsonl", [
        {"step": 14, "detector": "style", "severity": "warning", "action": "warn",
         "message": "'opener' in 60% of samples"},
        {"step": 26, "detector": "gold_gap", "severity": "critical", "action": "rollback", "rollback_to": 20,
         "message": "the trusted reward fell"}], tail='{"step": 27, "detec')
    _write_jsonl(rl / "monitor.jsonl", [{"step": s, "monitor/onpolicy/easy/accuracy": 1 - 0.01 * s,
                                         "monitor/onpolicy/fixed/easy/accuracy": 0.95} for s in (1, 11, 21, 31)])
    return rl


def test_monitor_section_shows_alarms_beside_the_rewards(tmp_path):
    rl_run(tmp_path)
    report = make_report(tmp_path)
    section = next(s for s in report.sections if s.id == "monitor-rl")
    text = section.blocks[0].text
    assert text.startswith("2 alarms; the first at step 14 (style: 'opener' in 60% of samples)")
    assert "peaked at step" in text and "steps after the first alarm" in text
    figure = section.blocks[1]
    rows = [[c.text for c in row] for row in figure.table.rows]
    assert rows[0][:4] == ["14", "style", "warning", "warn"] and rows[1][3] == "rollback to step 20"
    assert figure.svg.count('class="marker warning"') == 2  # one alarm + the legend's mark
    assert figure.svg.count('class="marker critical"') == 1
    assert 'class="series proxy' in figure.svg and 'class="series gold' in figure.svg
    accuracy = section.blocks[2]
    assert [[c.text for c in r] for r in accuracy.table.rows][0][0] == "easy, on-policy"
    notes = [b.text for s in report.sections if s.id == "notes" for b in s.blocks]
    assert any(n.startswith("rl/alarms.jsonl: skipped 1 malformed line") for n in notes)
    # the monitor's metrics are not drawn again as training curves
    training = next(s for s in report.sections if s.id == "training-rl")
    assert not any("monitor/" in getattr(b, "title", "") for b in training.blocks)


def test_monitor_section_in_html_and_markdown(tmp_path):
    rl_run(tmp_path)
    page = build_report(tmp_path).read_text(encoding="utf-8")
    assert re.search(r'id="monitor-rl"', page) and "<title>step 26: gold_gap (critical, rollback)" in page
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "Reward-model health during RL: rl" in md and "| 26 | gold_gap | critical |" in md


def test_run_without_alarms_says_so(tmp_path):
    _write_jsonl(tmp_path / "rl" / "metrics.jsonl", [{"step": s, "reward_mean": s} for s in range(1, 5)])
    _write_jsonl(tmp_path / "rl" / "alarms.jsonl", [])
    section = next(s for s in make_report(tmp_path).sections if s.id == "monitor-rl")
    assert section.blocks[0].text == "No alarm."
    assert all(s.id != "monitor-root" for s in make_report(tmp_path).sections)


def test_a_reward_model_run_is_not_taken_for_an_rl_run(tmp_path):
    """rm train logs a reward_mean too; only a run with response lengths (an RL run) gets the RL section."""
    _write_jsonl(tmp_path / "rm" / "metrics.jsonl", [{"step": s, "reward_mean": -0.1 * s, "loss": 0.7, "accuracy": 0.6}
                                                     for s in range(1, 6)])
    _write_jsonl(tmp_path / "rl" / "metrics.jsonl", [{"step": s, "reward_mean": 0.1 * s, "gold_mean": 0.05 * s,
                                                      "kl_k3": 0.01 * s, "response_length": 10 + s}
                                                     for s in range(1, 6)])
    titles = [s.title for s in make_report(tmp_path).sections]
    assert "RL: rl, 5 steps" in titles
    assert not any(t.startswith("RL: rm") for t in titles), titles
