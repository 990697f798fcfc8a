"""``rewardgauge run CONFIG.yaml``: stages chained in one run directory; complete stages are skipped, a crashed
stage resumes from its checkpoint, and a bad config stops before any stage runs (one line, exit 2)."""

import json
import textwrap

import pytest

import rewardgauge.train.sft as sft_training
from rewardgauge.cli import main

# Tiny: 16 demonstrations / 4 per batch = 4 SFT steps (checkpoints every 2), 2 reward-model steps, 2 RL steps.
PIPELINE = """\
out: {out}
stages:
  lab:
    pairs: 16
    heldout_pairs: 12
    demos: 16
    rl_prompts: 8
  policy:
    corpus:
      - ${{lab}}/train.jsonl
      - ${{lab}}/sft.jsonl
      - ${{lab}}/heldout.jsonl
  sft:
    model: ${{policy}}
    data: ${{lab}}/sft.jsonl
    batch_size: 4
    bucket: false
    save_every: 2
    lr: 1.0e-3
  rm:
    model: ${{sft}}
    data: ${{lab}}/train.jsonl
    max_steps: 2
    batch_size: 8
  eval:
    model: ${{rm}}
    data: ${{lab}}/heldout.jsonl
  rl:
    prompts: ${{lab}}/rl_prompts.jsonl
    steps: 2
    prompts_per_step: 2
    policy:
      model: ${{sft}}
    generation:
      group_size: 2
      max_new_tokens: 6
    reward:
      models:
        - ${{rm}}
"""


class _Crash(Exception):
    pass


def _write(tmp_path, text: str, name: str = "pipeline.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_run_chains_stages_skips_complete_ones_and_resumes_a_crashed_one(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    config = _write(tmp_path, PIPELINE.format(out=out))
    real_sft = sft_training.run_sft
    trained: list[int] = []  # examples each SFT call trained on
    crash_at = [3]

    def sft_stage(cfg, callbacks=()):
        def crash(state):
            if crash_at and state.step == crash_at[0]:
                raise _Crash
        result = real_sft(cfg, [crash])
        trained.append(result.examples)
        return result

    monkeypatch.setattr(sft_training, "run_sft", sft_stage)
    with pytest.raises(_Crash):
        main(["run", str(config), "--no-progress"])
    assert sorted(p.parent.name for p in out.glob("*/stage.json")) == ["lab", "policy"]
    assert sorted(p.name for p in (out / "sft" / "checkpoints").iterdir()) == ["step-2"]
    lab_mtime = (out / "lab" / "train.jsonl").stat().st_mtime_ns
    capsys.readouterr()

    crash_at.clear()
    assert main(["run", str(config), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "[run] lab: complete, skipped" in printed and "[run] policy: complete, skipped" in printed
    assert trained == [2 * 4]  # the two steps after the step-2 checkpoint, 4 demonstrations each
    assert (out / "lab" / "train.jsonl").stat().st_mtime_ns == lab_mtime
    assert [json.loads(line)["step"] for line in (out / "sft" / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    # later stages read the earlier stages' folders
    rl_config = json.loads((out / "rl" / "stage.json").read_text())["config"]
    assert rl_config["policy"]["model"] == str(out / "sft") and rl_config["reward"]["models"] == [str(out / "rm")]
    assert json.loads((out / "eval" / "eval.json").read_text())["model"] == str(out / "rm")
    assert [json.loads(line)["step"] for line in (out / "rl" / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert (out / "rl" / "style.jsonl").is_file()  # lab prompts: style rates of the samples for the report
    assert printed.rstrip().endswith(f"[run] report: {out / 'report.html'}") and (out / "report.html").is_file()

    # all complete: a third run trains nothing
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/stage.json")}
    assert main(["run", str(config), "--no-progress", "--no-report"]) == 0
    assert capsys.readouterr().out.count("complete, skipped") == 6
    assert trained == [2 * 4] and {p: p.stat().st_mtime_ns for p in stamps} == stamps

    # a complete stage whose config changed: stop before running anything
    changed = _write(tmp_path, PIPELINE.format(out=out).replace("lr: 1.0e-3", "lr: 2.0e-3"), "changed.yaml")
    assert main(["run", str(changed), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "stage 'sft' was completed with another config (differs in: lr)" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("edit, where, message", [
    (("    lr: 1.0e-3", "    lr: 1.0e-3\n    lrate: 1"), "yaml:20: field 'stages.sft.lrate'", "unknown config field"),
    (("    lr: 1.0e-3", "    lr: fast"), "yaml:19: field 'stages.sft.lr'", "must be a number"),
    (("    lr: 1.0e-3", "    lr: -1"), "yaml:13: field 'stages.sft'", "lr must be positive"),
    (("model: ${{policy}}", "model: ${{rm}}"), "field 'stages.sft.model'", "${rm} names no earlier stage"),
    (("  eval:\n", "  evaluate:\n"), "field 'stages.evaluate.kind'", "unknown stage kind 'evaluate'"),
    (("  eval:\n", "  eval:\n    out: x.json\n"), "field 'stages.eval.out'", "set by the runner"),
    (("      group_size: 2", "      group_size: 1"), "field 'stages.rl'", "group_size must be at least 2"),
])
def test_bad_config_is_one_line_and_exit_2_before_any_stage_runs(tmp_path, capsys, edit, where, message):
    out = tmp_path / "run"
    config = _write(tmp_path, PIPELINE.format(out=out).replace(edit[0].replace("{{", "{").replace("}}", "}"),
                                                               edit[1].replace("{{", "{").replace("}}", "}"), 1))
    assert main(["run", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and where in err and str(config) in err, err
    assert not out.exists()  # nothing ran, nothing was written


def test_the_shipped_examples_are_valid_pipelines():
    from pathlib import Path

    from rewardgauge.pipeline import load_pipeline

    examples = Path(__file__).resolve().parent.parent / "examples"
    root, stages = load_pipeline(examples / "hybrid.yaml")
    assert [(s.name, s.kind) for s in stages] == [
        ("lab", "lab"), ("policy", "policy"), ("sft", "sft"), ("dpo", "dpo"), ("dpo_eval", "eval"), ("rm", "rm"),
        ("eval", "eval"), ("audit", "audit"), ("rl", "rl")]
    rl = stages[-1].config
    # RLHF from the DPO policy against the explicit reward model trained from the SFT model
    assert rl.policy.model == str(root / "dpo") and rl.reward.models == [str(root / "rm")]
    assert stages[3].config.model == str(root / "sft") and stages[4].config.model == str(root / "dpo")
    _, small = load_pipeline(examples / "lab-small.yaml")
    assert [s.kind for s in small] == ["lab", "policy", "sft", "rm", "eval", "audit", "rl"]
