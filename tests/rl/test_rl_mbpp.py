"""GRPO on MBPP prompts with the execution reward: the plumbing from prompt to sandboxed hidden tests works
on the tiny model (whose pass rate is zero: it has never seen code)."""

import json
import os
from pathlib import Path

import pytest

from rewardgauge.config import load_config
from rewardgauge.train.config import RLConfig
from rewardgauge.train.rl import run_rl

DATA = Path(os.environ.get("REWARDGAUGE_SHARED_DATA", Path(__file__).resolve().parents[2] / ".." / "shared" / "data"))
MBPP = DATA / "mbpp" / "mbpp.jsonl"


@pytest.mark.slow
@pytest.mark.skipif(not MBPP.is_file(), reason=f"MBPP not found at {MBPP} (set REWARDGAUGE_SHARED_DATA)")
def test_grpo_on_mbpp_with_hidden_tests_in_the_sandbox(tmp_path):
    from rewardgauge.modeling.policy import init_model

    tasks = tmp_path / "mbpp8.jsonl"
    tasks.write_text("".join(MBPP.read_text().splitlines(keepends=True)[10:18]))  # task ids 11-18
    init_model([tasks], tmp_path / "policy", preset="tiny")  # words of the task texts
    out = tmp_path / "run"
    result = run_rl(load_config(RLConfig, None, {
        "prompts": str(tasks), "out": str(out), "policy.model": str(tmp_path / "policy"),
        "reward.models": f"exec:{tasks}", "steps": 2, "prompts_per_step": 2, "generation.group_size": 2,
        "generation.max_new_tokens": 12, "progress": False, "save_every": 0}))
    assert result.steps == 2
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["reward_mean"] == 0.0 and rows[-1]["reward/passed"] == 0.0
    assert "gold_mean" not in rows[-1]  # not lab prompts: no gold reward
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert samples and all(s["reward"] == 0.0 for s in samples)
    assert all("assert" not in s["prompt"] for s in samples)  # the hidden tests are not in the prompt
