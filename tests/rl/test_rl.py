import json
import os
import signal
import subprocess
import sys
import time

import pytest

from rewardgauge.cli import main
from rewardgauge.config import load_config
from rewardgauge.train.config import RLConfig
from rewardgauge.train.rl import run_rl

TIMING = ("time", "time_generate", "time_reward", "time_update")


def _cfg(lab_rl, out, **flat):
    base = {"prompts": str(lab_rl["prompts"]), "out": str(out), "policy.model": str(lab_rl["policy"]),
            "reward.models": "lab-gold", "steps": 3, "prompts_per_step": 4, "generation.group_size": 4,
            "generation.max_new_tokens": 12, "policy.lr": 1e-3, "kl.coef": 0.05, "progress": False, "save_every": 0}
    return load_config(RLConfig, None, {**base, **flat})


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def _without_timing(rows):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def test_grpo_logs_every_metric_samples_and_saves_the_policy(lab_rl, tmp_path):
    out = tmp_path / "grpo"
    result = run_rl(_cfg(lab_rl, out, samples_per_step=3, samples_max=7))
    rows = _lines(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3] and result.steps == 3
    expected = {"reward_mean", "reward_std", "gold_mean", "gold_std", "kl_k1", "kl_k2", "kl_k3", "kl_coef",
                "entropy", "response_length", "eos_fraction", "clip_fraction", "lr", "loss", "policy_loss",
                "kl_loss", "grad_norm", "reward/correctness", "gold/correctness"}
    assert expected <= set(rows[-1]), expected - set(rows[-1])
    assert rows[0]["kl_k1"] == rows[0]["kl_k3"] == 0.0  # the first samples come from the reference itself
    assert rows[-1]["kl_k3"] > 0 and rows[-1]["kl_k2"] > 0
    assert rows[0]["reward_mean"] == rows[0]["gold_mean"]  # the reward here is the gold reward
    samples = _lines(out / "samples.jsonl")
    assert [s["step"] for s in samples] == [1, 1, 1, 2, 2, 2, 3]  # 3 per step, capped at 7 lines
    assert {"prompt", "response", "reward", "gold", "advantage", "length", "group"} <= set(samples[0])
    assert (out / "model.safetensors").is_file() and json.loads((out / "rl.json").read_text())["algo"] == "grpo"
    assert (out / "checkpoints" / "step-3").is_dir()


@pytest.mark.parametrize("algo,extra", [
    ("rloo", {"kl.placement": "reward", "kl.estimator": "k1"}),
    ("dr_grpo", {"clip_high": 0.28, "kl.target": 0.01}),
    ("ppo", {"kl.placement": "reward", "epochs_per_step": 2, "minibatches": 2}),
])
def test_rloo_dr_grpo_and_ppo_run(lab_rl, tmp_path, algo, extra):
    result = run_rl(_cfg(lab_rl, tmp_path / algo, algo=algo, steps=2, **extra))
    rows = _lines(tmp_path / algo / "metrics.jsonl")
    assert result.steps == 2 and len(rows) == 2
    if algo == "ppo":
        assert rows[0]["value_loss"] > 0
    if algo == "dr_grpo":  # the adaptive controller moved β after step 1 (KL 0 < target: β shrinks)
        assert rows[0]["kl_coef"] == 0.05 and rows[1]["kl_coef"] < 0.05
    if extra.get("kl.placement") == "reward":
        assert "kl_loss" not in rows[-1]


@pytest.mark.parametrize("variant", [{"layout": "plain"}, {"layout": "shared"}, {"micro_batch_tokens": 1}])
def test_layouts_and_micro_batches_give_the_same_run(lab_rl, tmp_path, variant):
    """The plain and shared layouts, and one micro-batch per response, compute the default's loss and update."""
    a = run_rl(_cfg(lab_rl, tmp_path / "a", steps=2))
    b = run_rl(_cfg(lab_rl, tmp_path / "b", steps=2, **variant))
    for key in ("loss", "policy_loss", "kl_loss", "grad_norm", "reward_mean", "kl_k3", "entropy", "clip_fraction"):
        assert a.last_metrics[key] == pytest.approx(b.last_metrics[key], rel=1e-3, abs=1e-5), key


def test_length_chunks():
    from rewardgauge.train.rl import length_chunks

    lengths = [30, 2, 3, 29, 2, 31, 3, 28]
    chunks = length_chunks(lengths, max_tokens=10_000, overhead=10)
    assert sorted(i for c in chunks for i in c) == list(range(8))
    assert [sorted(lengths[i] for i in c) for c in chunks] == [[2, 2, 3, 3], [28, 29, 30, 31]]
    assert length_chunks(lengths, max_tokens=10_000, overhead=10_000) == [[1, 4, 2, 6, 7, 3, 0, 5]]  # one forward
    assert all(len(c) == 1 for c in length_chunks(lengths, max_tokens=1))  # at most 1 token: one row each


@pytest.mark.slow
def test_kill_9_then_resume_gives_the_metrics_of_an_uninterrupted_run(lab_rl, tmp_path):
    flags = {"steps": 5, "save_every": 2, "kl.target": 0.5}
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    run_rl(_cfg(lab_rl, whole, **flags))
    args = ["rl", "--prompts", str(lab_rl["prompts"]), "--policy.model", str(lab_rl["policy"]), "--out", str(cut),
            "--reward.models", "lab-gold", "--steps", "5", "--prompts-per-step", "4", "--generation.group-size", "4",
            "--generation.max-new-tokens", "12", "--policy.lr", "1e-3", "--kl.coef", "0.05", "--kl.target", "0.5",
            "--save-every", "2", "--no-progress"]
    proc = subprocess.Popen([sys.executable, "-m", "rewardgauge.cli", *args], env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        metrics = cut / "metrics.jsonl"
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (cut / "checkpoints" / "step-2").is_dir() and not (cut / "model.safetensors").exists()
    run_rl(_cfg(lab_rl, cut, resume=True, **flags))
    assert _without_timing(_lines(cut / "metrics.jsonl")) == _without_timing(_lines(whole / "metrics.jsonl"))
    assert (cut / "samples.jsonl").read_text() == (whole / "samples.jsonl").read_text()


def _rl_args(lab_rl, out, *extra):
    return ["rl", "--prompts", str(lab_rl["prompts"]), "--policy.model", str(lab_rl["policy"]),
            "--reward.models", "lab-gold", "--out", str(out), "--steps", "1", "--no-progress", *extra]


def _reward_model_from(folder, out):
    """A (randomly initialised) one-output reward model on ``folder``'s backbone and tokenizer."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1).save_pretrained(out)
    AutoTokenizer.from_pretrained(folder).save_pretrained(out)
    return out


def test_bad_input_stops_before_training_with_one_line(lab_rl, tmp_path, capsys):
    from rewardgauge.modeling.policy import init_model

    out = tmp_path / "o"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    other = tmp_path / "other_vocab"
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"prompt": "entirely different words here", "response": "nothing shared"}) + "\n")
    init_model([corpus], tmp_path / "other_lm", preset="tiny")
    _reward_model_from(tmp_path / "other_lm", other)
    same = _reward_model_from(lab_rl["policy"], tmp_path / "same_vocab")
    capsys.readouterr()
    cases = [
        (["--reward.models", str(tmp_path / "no_such_rm")], "reward source not found"),
        (["--reward.models", str(other)], "cannot read"),
        (["--prompts", str(empty)], "no prompts"),
        (["--generation.group-size", "1"], "group_size must be at least 2"),
    ]
    for extra, message in cases:
        code = main(_rl_args(lab_rl, out, *extra))
        err = capsys.readouterr().err.strip()
        assert code == 2 and message in err and len(err.splitlines()) == 1, (extra, err)
        assert not out.exists()
    # the same reward model folder with the policy's own vocabulary is accepted
    assert main(_rl_args(lab_rl, out, "--reward.models", str(same), "--prompts-per-step", "2",
                         "--generation.group-size", "2", "--generation.max-new-tokens", "4")) == 0


def test_a_weighted_sum_of_rewards_logs_each_component(lab_rl, tmp_path):
    out = tmp_path / "sum"
    run_rl(_cfg(lab_rl, out, steps=1, **{"reward.models": "lab-gold,lab-gold", "reward.weights": "1,0.5"}))
    row = _lines(out / "metrics.jsonl")[0]
    assert row["reward_mean"] == pytest.approx(1.5 * row["reward/lab-gold"], abs=1e-5)
    assert row["reward/lab-gold_1"] == row["reward/lab-gold"] == row["gold_mean"]
    assert "reward/lab-gold/correctness" in row  # a component's own aspects are kept too


def test_a_reward_server_by_url_is_the_reward_and_every_request_stays_on_loopback(lab_rl, tmp_path, loopback_only):
    """`rewardgauge rl --reward.models http://127.0.0.1:PORT` (two replica URLs of one server here): the served
    lab gold reward is the reward, so the optimised reward equals the gold reward logged beside it (computed in
    process), aspects included, and the server scored every rollout."""
    import httpx

    from rewardgauge.rewards.loading import load_reward_model
    from rewardgauge.serve.config import ServeConfig
    from rewardgauge.serve.server import serve_in_thread

    out = tmp_path / "remote"
    with serve_in_thread(load_reward_model("lab-gold"), ServeConfig(rm="lab-gold", max_wait_ms=1)) as url:
        assert url.startswith("http://127.0.0.1:")
        code = main(_rl_args(lab_rl, out, "--reward.models", f"{url} {url}/", "--steps", "2", "--prompts-per-step",
                             "4", "--generation.group-size", "4", "--generation.max-new-tokens", "12"))
        metrics = httpx.get(f"{url}/metrics").text
    assert code == 0
    scored = [float(line.split()[1]) for line in metrics.splitlines()
              if line.startswith("rewardgauge_responses_scored_total ")]
    assert scored == [2 * 4 * 4]
    rows = _lines(out / "metrics.jsonl")
    assert len(rows) == 2
    for row in rows:
        assert row["reward_mean"] == row["gold_mean"] and row["reward_std"] == row["gold_std"]
        assert row["reward/correctness"] == row["gold/correctness"]
