"""The run directory (train/rundir.py) through the training loop: checkpoints, resume, callbacks' controls,
per-step logs, non-finite steps, trackers; and the learning-rate schedule."""

import importlib.util
import json
import math
import re

import pytest
import torch
from safetensors.torch import load_file

from rewardgauge.cli import main
from rewardgauge.train.config import LoopConfig
from rewardgauge.train.loop import fit, lr_lambda, make_accelerator
from rewardgauge.train.reward import RewardTrainConfig, train_reward_model
from rewardgauge.train.rundir import Control, NonFiniteError, RunDir

# ---- a toy regression trained by fit(): fast, exact on CPU ----

def _toy_examples(n=64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1
    return [(x[i], y[i]) for i in range(n)]


def _collate(batch):
    return torch.stack([x for x, _ in batch]), torch.stack([y for _, y in batch])


def _loss(nan_on_calls=()):
    calls = [0]

    def loss_fn(model, batch):
        calls[0] += 1
        x, y = batch
        loss = ((model(x).squeeze(-1) - y) ** 2).mean()
        if calls[0] in nan_on_calls:
            loss = loss * float("nan")
        return loss, {"loss": loss.detach()}
    return loss_fn


def _toy_fit(out, callbacks=(), nan_on_calls=(), **kw):
    cfg = LoopConfig(**{"max_steps": 8, "batch_size": 8, "lr": 0.05, "save_every": 0, "progress": False,
                        "bucket": False, "keep_checkpoints": 5, **kw})
    acc = make_accelerator(cfg)
    run = RunDir(out, cfg, acc)
    torch.manual_seed(1)
    model = torch.nn.Linear(4, 1)
    examples = _toy_examples()
    return fit(acc, model, examples, [1] * len(examples), _collate, _loss(nan_on_calls), cfg, run,
               callbacks=callbacks), run


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _checkpoints(out):
    return sorted(p.name for p in (out / "checkpoints").iterdir())


def test_schedule_against_hand_values():
    # warm-up (s+1)/(w+1) for s < w, then cosine / linear over the remaining total - w steps
    w, total = 4, 10
    cos = [0.2, 0.4, 0.6, 0.8] + [0.5 * (1 + math.cos(math.pi * k / 6)) for k in range(6)]
    assert [lr_lambda("cosine", w, total)(s) for s in range(total)] == pytest.approx(cos)
    assert [lr_lambda("linear", w, total)(s) for s in range(total)] == pytest.approx(
        [0.2, 0.4, 0.6, 0.8, 1.0, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6])
    assert [lr_lambda("constant", w, total)(s) for s in range(total)] == pytest.approx([0.2, 0.4, 0.6, 0.8] + [1.0] * 6)
    assert lr_lambda("cosine", 0, total)(0) == 1.0
    # Why not transformers' scheduler: its warm-up is s/w, so its first step has learning rate 0 (a wasted
    # step) and every warm-up step differs; after warm-up the curves agree.
    from transformers import get_cosine_schedule_with_warmup

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    theirs = get_cosine_schedule_with_warmup(opt, w, total).lr_lambdas[0]
    assert theirs(0) == 0.0 and theirs(2) == 0.5
    assert [theirs(s) for s in range(w, total)] == pytest.approx(cos[w:])


def test_callbacks_see_each_step_and_stop_or_save_a_checkpoint_then_resume_matches(tmp_path):
    full, _ = _toy_fit(tmp_path / "full")
    seen = []

    def watch(state):
        seen.append((state.step, state.metrics["loss"]))
        if state.step == 3:
            return Control(save_now=True)
        if state.step == 5:
            return Control(stop=True)
        return None

    cut, _ = _toy_fit(tmp_path / "cut", callbacks=[watch], log_every=100)
    assert cut.stopped and cut.steps == 5
    assert [s for s, _ in seen] == [1, 2, 3, 4, 5] and all(isinstance(v, float) for _, v in seen)
    assert _checkpoints(tmp_path / "cut") == ["step-3", "step-5"]
    assert [r["step"] for r in _rows(tmp_path / "cut" / "metrics.jsonl")] == [1, 2, 3, 4, 5]
    assert [r["loss"] for r in _rows(tmp_path / "cut" / "metrics.jsonl")] == [round(v, 6) for _, v in seen]

    resumed, _ = _toy_fit(tmp_path / "cut", resume=True)
    assert resumed.steps == 8 and not resumed.stopped
    for a, b in zip(resumed.model.parameters(), full.model.parameters()):
        assert torch.equal(a, b)
    strip = [{k: v for k, v in r.items() if k != "time"} for r in _rows(tmp_path / "full" / "metrics.jsonl")]
    assert [{k: v for k, v in r.items() if k != "time"} for r in _rows(tmp_path / "cut" / "metrics.jsonl")] == strip


class _Crash(Exception):
    pass


def test_step_logs_are_cleared_by_a_new_run_and_cut_back_on_resume(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "samples.jsonl").write_text('{"step": 99}\n')  # a stale log of an earlier run
    holder = {}

    def alarm(crash_at):
        def cb(state):
            holder["run"].log("alarms.jsonl").append([{"step": state.step, "alarm": "x"}])
            if state.step == crash_at:
                raise _Crash
        return cb

    cfg = LoopConfig(max_steps=8, batch_size=8, lr=0.05, save_every=2, keep_checkpoints=2, progress=False,
                     bucket=False)

    def go(crash_at, resume):
        c = LoopConfig(**{**cfg.__dict__, "resume": resume})
        acc = make_accelerator(c)
        holder["run"] = run = RunDir(out, c, acc)
        torch.manual_seed(1)
        examples = _toy_examples()
        return fit(acc, torch.nn.Linear(4, 1), examples, [1] * 64, _collate, _loss(), c, run,
                   callbacks=[alarm(crash_at)])

    with pytest.raises(_Crash):
        go(crash_at=5, resume=False)
    assert not (out / "samples.jsonl").exists()
    assert _checkpoints(out) == ["step-2", "step-4"]  # the partial ones are gone, the last 2 kept
    assert [r["step"] for r in _rows(out / "alarms.jsonl")] == [1, 2, 3, 4, 5]
    (out / "checkpoints" / ".step-6.tmp").mkdir()  # a save a crash interrupted
    (out / "checkpoints" / "step-7").mkdir()  # no loop_state.json: not a checkpoint to resume from
    go(crash_at=None, resume=True)
    assert _checkpoints(out) == ["step-6", "step-7", "step-8"]
    assert [r["step"] for r in _rows(out / "alarms.jsonl")] == list(range(1, 9))
    assert [r["step"] for r in _rows(out / "metrics.jsonl")] == list(range(1, 9))
    state = json.loads((out / "checkpoints" / "step-8" / "loop_state.json").read_text())
    assert state == {"step": 8}
    go(crash_at=None, resume=False)  # a new run starts every log afresh
    assert [r["step"] for r in _rows(out / "alarms.jsonl")] == list(range(1, 9))


def test_nonfinite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(NonFiniteError, match=r"step 5: loss is nan; the run stopped there and its last good "
                                             r"checkpoint is .*step-4"):
        _toy_fit(out, nan_on_calls=range(5, 100), save_every=2, log_every=100)
    assert _checkpoints(out) == ["step-2", "step-4"]
    assert [r["step"] for r in _rows(out / "metrics.jsonl")] == [1, 2, 3, 4]
    weights = load_file(out / "checkpoints" / "step-4" / "model.safetensors")
    assert all(torch.isfinite(t).all() for t in weights.values())


def test_skip_nonfinite_skips_those_steps_and_counts_them(tmp_path):
    result, _ = _toy_fit(tmp_path / "run", nan_on_calls={3, 4}, skip_nonfinite=True)
    rows = _rows(tmp_path / "run" / "metrics.jsonl")
    assert result.steps == 8 and [r["step"] for r in rows] == list(range(1, 9))
    assert [r["nonfinite_skipped"] for r in rows] == [0, 0, 1, 2, 2, 2, 2, 2]
    assert ["loss" in r for r in rows] == [True, True, False, False, True, True, True, True]
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    # a skipped step changes no weight: after steps 3 and 4 are skipped they are those after step 2
    two, _ = _toy_fit(tmp_path / "two", max_steps=4, callbacks=[lambda s: Control(stop=s.step == 2)])
    four, _ = _toy_fit(tmp_path / "four", max_steps=4, nan_on_calls={3, 4}, skip_nonfinite=True)
    assert two.steps == 2 and four.steps == 4
    for a, b in zip(two.model.parameters(), four.model.parameters()):
        assert torch.equal(a, b)


def test_huge_learning_rate_exits_2_from_the_cli_without_a_nan_model(lang, tmp_path, capsys):
    out = tmp_path / "o"
    code = main(["rm", "train", "--model", str(lang["model"]), "--data", str(lang["train"]), "--out", str(out),
                 "--lr", "1e30", "--warmup-ratio", "0", "--save-every", "1", "--keep-checkpoints", "5",
                 "--max-steps", "6", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert re.search(r"step 2: (loss|grad_norm) is nan; the run stopped there and its last good checkpoint is", err)
    assert _checkpoints(out) == ["step-1"] and not (out / "model.safetensors").exists()


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="tensorboard is not installed")
def test_tensorboard_event_files_hold_the_metrics(lang, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "rm"
    assert main(["rm", "train", "--model", str(lang["model"]), "--data", str(lang["train"]), "--out", str(out),
                 "--max-steps", "4", "--lr", "2e-3", "--report-to", "tensorboard", "--no-progress"]) == 0
    events = list((out / "tensorboard").rglob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    rows = _rows(out / "metrics.jsonl")
    for key in ("loss", "accuracy", "grad_norm", "lr"):
        scalars = acc.Scalars(key)
        assert [s.step for s in scalars] == [1, 2, 3, 4]
        assert [s.value for s in scalars] == pytest.approx([r[key] for r in rows], rel=1e-5)


@pytest.mark.parametrize("tracker", ["wandb", "trackio"])
def test_a_tracker_not_installed_is_one_line_and_writes_nothing(lang, tmp_path, capsys, tracker):
    if importlib.util.find_spec(tracker) is not None:
        pytest.skip(f"{tracker} is installed")
    out = tmp_path / "rm"
    assert main(["rm", "train", "--model", str(lang["model"]), "--data", str(lang["train"]), "--out", str(out),
                 "--report-to", tracker, "--no-progress"]) == 2
    assert capsys.readouterr().err == (f"rewardgauge: error: field 'report_to': --report-to {tracker} needs the "
                                       f"{tracker} package, which is not installed: pip install "
                                       f"'rewardgauge[{tracker}]'\n")
    assert not out.exists()


def test_resume_accepts_changed_logging_options_and_refuses_others(lang, tmp_path):
    base = dict(model=str(lang["model"]), data=str(lang["train"]), out=str(tmp_path / "run"), lr=2e-3,
                batch_size=16, progress=False, save_every=2, max_steps=4)
    train_reward_model(RewardTrainConfig(**base))
    result = train_reward_model(RewardTrainConfig(**{**base, "resume": True, "log_every": 3, "keep_checkpoints": 2,
                                                     "skip_nonfinite": True}))
    assert result.steps == 4
    from rewardgauge.errors import InputError

    with pytest.raises(InputError, match="field 'max_grad_norm': differs from the run being resumed"):
        train_reward_model(RewardTrainConfig(**{**base, "resume": True, "max_grad_norm": 0.5}))
