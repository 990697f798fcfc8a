"""``rewardgauge quickstart`` at a small size: a second run skips finished stages and resumes an interrupted
training stage from its last checkpoint, ending where an uninterrupted run ends."""

import dataclasses
import functools
import json

import pytest
import torch
from safetensors.torch import load_file

import rewardgauge.lab.dataset as lab_dataset
import rewardgauge.train.reward as reward_training
import rewardgauge.train.sft as sft_training
from rewardgauge.quickstart import QuickstartConfig, run_quickstart

# 64 pairs / 8 per batch: 8 reward-model steps; 32 demonstrations: 4 SFT steps; 2 GRPO steps of 2 x 2 rollouts
SMALL = dict(pairs=64, heldout_pairs=30, demos=32, sft_epochs=1, rm_epochs=1, batch_size=8, progress=False,
             rl_steps=2, rl_prompts_per_step=2, rl_group_size=2, rl_max_new_tokens=8)


class _Interrupt(Exception):
    pass



def test_quickstart_skips_finished_stages_and_resumes_the_interrupted_one(tmp_path, monkeypatch, capsys):
    real_rm, real_sft = reward_training.train_reward_model, sft_training.run_sft
    calls: list[tuple[str, int]] = []  # (stage, examples trained on) per training call
    rm_configs = []
    crash_at = [5]

    def crash(state):
        if state.step == crash_at[0]:
            raise _Interrupt

    def rm_stage(cfg, callbacks=(), **kw):
        # The quickstart checkpoints every 500 steps; every 2 here, so step 5 falls after the step-4 checkpoint.
        cfg = dataclasses.replace(cfg, save_every=2)
        rm_configs.append(cfg)
        result = real_rm(cfg, [crash] if crash_at else callbacks, **kw)
        calls.append(("rm", result.examples))
        return result

    def sft_stage(cfg, callbacks=()):
        result = real_sft(cfg, callbacks)
        calls.append(("sft", result.examples))
        return result

    # 32 RL / evaluation prompts instead of 512: the audit's prompts, and most of the lab stage's time
    monkeypatch.setattr(lab_dataset, "LabDataConfig", functools.partial(lab_dataset.LabDataConfig, rl_prompts=32))
    monkeypatch.setattr(reward_training, "train_reward_model", rm_stage)
    monkeypatch.setattr(sft_training, "run_sft", sft_stage)
    out = tmp_path / "qs"
    cfg = QuickstartConfig(out=str(out), **SMALL)

    with pytest.raises(_Interrupt):
        run_quickstart(cfg)
    assert calls == [("sft", 4 * 8)]
    assert sorted(p.name for p in out.iterdir() if (p / ".done").exists()) == ["lab", "policy", "sft"]
    assert not (out / "rm" / ".done").exists() and not (out / "summary.json").exists()
    assert sorted(p.name for p in (out / "rm" / "checkpoints").iterdir()) == ["step-4"]
    finished = {p: p.stat().st_mtime_ns for p in [out / "lab" / "train.jsonl", out / "policy" / "config.json",
                                                  out / "sft" / "model.safetensors"]}
    capsys.readouterr()

    crash_at.clear()
    calls.clear()
    summary = run_quickstart(cfg)
    printed = capsys.readouterr().out
    for stage in ("lab", "policy", "sft"):
        assert f"[quickstart] {stage}: done already, skipped" in printed
    assert "[quickstart] rm ..." in printed
    assert calls == [("rm", (8 - 4) * 8)]  # the last four steps only: resumed from step-4
    assert {p: p.stat().st_mtime_ns for p in finished} == finished
    assert (out / "rm" / ".done").exists() and (out / "report.html").is_file()
    assert json.loads((out / "summary.json").read_text()) == summary
    assert 0 <= summary["rm_accuracy"] <= 1 and "seconds_rm" in summary and "seconds_sft" not in summary

    # the GRPO stage against the reward model: gold logged beside the proxy, style rates from every rollout
    rl = out / "rl"
    assert (rl / ".done").exists() and "seconds_rl" in summary
    metrics = [json.loads(line) for line in (rl / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in metrics] == [1, 2] and all("gold_mean" in r and "kl_k3" in r for r in metrics)
    samples = [json.loads(line) for line in (rl / "samples.jsonl").read_text().splitlines()]
    assert [r["step"] for r in samples] == [1] * 4 + [2] * 4  # every rollout: 2 prompts x 2 responses per step
    style = [json.loads(line) for line in (rl / "style.jsonl").read_text().splitlines()]
    assert [(r["step"], r["samples"]) for r in style] == [(1, 4), (2, 4)]
    # two steps: one window of both (the figures are means over up to 5 steps)
    assert summary["rl_steps"] == 2 and summary["rl_window"] == 2 and summary["rl_gold_peak_steps"] == "1-2"
    assert summary["rl_gold_first"] == round((metrics[0]["gold_mean"] + metrics[1]["gold_mean"]) / 2, 4)
    assert summary["rl_proxy_last"] == round((metrics[0]["reward_mean"] + metrics[1]["reward_mean"]) / 2, 4)
    assert summary["rl_filler_rate_first"] == round((style[0]["filler_rate"] + style[1]["filler_rate"]) / 2, 4)
    assert "[quickstart] rl ..." in printed and "GRPO against the reward model, 2 steps" in printed
    assert printed.rstrip().endswith(f"[quickstart] report: {out / 'report.html'}")
    html = (out / "report.html").read_text()
    for title in ("RL: rl, 2 steps", "Proxy and gold reward over steps", "Proxy and gold reward against √KL",
                  "Response length over steps", "Rollouts at the start (step 1)", "Rollouts at the end (step 2)"):
        assert title in html, title

    # the resumed reward model is the one an uninterrupted run of the same stage trains
    rows = [json.loads(line) for line in (out / "rm" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 9))
    whole = real_rm(dataclasses.replace(rm_configs[-1], out=str(tmp_path / "whole"), resume=False))
    assert whole.steps == 8
    got, want = load_file(out / "rm" / "model.safetensors"), load_file(tmp_path / "whole" / "model.safetensors")
    for k in want:
        torch.testing.assert_close(got[k], want[k], atol=1e-6, rtol=0)
