"""The monitor inside ``rewardgauge rl``: alarms written and printed as they happen, and their actions (raise
the KL coefficient, roll back to a checkpoint, stop) carried out by the RL loop."""

import json

from rewardgauge.cli import main
from rewardgauge.config import load_config
from rewardgauge.monitor.alarms import Alarm
from rewardgauge.monitor.commands import MonitoredRLConfig, RLMonitor
from rewardgauge.monitor.monitor import Monitor, Observation
from rewardgauge.train.config import RLConfig
from rewardgauge.train.rl import StepRollouts, run_rl
from rewardgauge.train.rundir import Control


def _cfg(lab_rl, out, cls=RLConfig, **flat):
    base = {"prompts": str(lab_rl["prompts"]), "out": str(out), "policy.model": str(lab_rl["policy"]),
            "reward.models": "lab-gold", "steps": 3, "prompts_per_step": 4, "generation.group_size": 4,
            "generation.max_new_tokens": 12, "policy.lr": 1e-3, "kl.coef": 0.05, "progress": False, "save_every": 0}
    return load_config(cls, None, {**base, **flat})


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()] if path.is_file() else []


def test_rl_carries_out_a_roll_back_and_a_kl_raise(lab_rl, tmp_path, capsys):
    seen = []

    def callback(state):
        seen.append((state.step, state.metrics["kl_coef"]))
        r = state.rollouts
        assert isinstance(r, StepRollouts) and len(r.responses) == len(r.prompts) == len(r.lengths) == 16
        assert r.gold is not None and len(r.scores) == 16
        fresh = r.sample(["compute 7 + 5 * 3 ."], 2)
        assert len(fresh) == 1 and len(fresh[0]) == 2 and all(isinstance(t, str) for t in fresh[0])
        if len(seen) == 4:  # once, at step 4: back to the checkpoint of step 2, with 3x the KL coefficient
            return Control(rollback_to=3, kl_coef_factor=3.0)
        return None

    out = tmp_path / "rb"
    result = run_rl(_cfg(lab_rl, out, steps=5, save_every=2, keep_checkpoints=3), callbacks=[callback])
    assert [s for s, _ in seen] == [1, 2, 3, 4, 3, 4, 5]
    assert [c for _, c in seen][:4] == [0.05] * 4 and [c for _, c in seen][4:] == [0.15] * 3
    rows = _lines(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]  # the rolled-back steps' lines were cut
    assert rows[2]["kl_coef"] == 0.15 and result.steps == 5
    assert "rolled back to the checkpoint of step 2" in capsys.readouterr().err


def test_a_roll_back_without_a_checkpoint_stops_the_run(lab_rl, tmp_path, capsys):
    out = tmp_path / "nock"
    result = run_rl(_cfg(lab_rl, out, steps=4), callbacks=[lambda s: Control(rollback_to=1) if s.step == 2 else None])
    assert result.stopped and result.steps == 2
    assert "no checkpoint at or before step 1" in capsys.readouterr().err


class _Fixed:
    """A monitor double: the given action at the given step."""

    def __init__(self, action, at, rollback_to=None):
        self.action, self.at, self.rollback_to = action, at, rollback_to

    def observation(self, step):
        alarms = [Alarm(step, "test", "x", action=self.action, rollback_to=self.rollback_to)] if step == self.at else []
        return Observation(step, alarms=alarms)


def test_rl_monitor_turns_actions_into_controls():
    m = RLMonitor(Monitor([]), kl_raise_factor=2.5, max_rollbacks=1)
    assert m.decide(Observation(1)) is None
    assert m.decide(_Fixed("warn", 1).observation(1)) is None
    assert m.decide(_Fixed("raise_kl", 1).observation(1)) == {"kl_coef_factor": 2.5}
    assert m.decide(_Fixed("stop", 1).observation(1)) == {"stop": True}
    assert m.decide(_Fixed("rollback", 1, rollback_to=4).observation(1)) == {"rollback_to": 4, "kl_coef_factor": 2.5}
    assert m.decide(_Fixed("rollback", 1, rollback_to=4).observation(1)) == {"stop": True}  # max_rollbacks used
    assert RLMonitor(Monitor([])).decide(_Fixed("rollback", 1).observation(1)) == {"stop": True}  # nowhere to go
    m2 = RLMonitor(Monitor([]))
    m2.load_state_dict(m.state_dict())
    assert m2.rollbacks == 1


def test_rewardgauge_rl_runs_the_monitor_and_stops_on_its_alarm(lab_rl, tmp_path, capsys):
    """A KL budget no run can keep, with the action stop: the alarm is printed and written at step 2 (the
    first step's samples come from the reference: KL 0), the run ends there; every step's monitor metrics are
    in monitor.jsonl, including the on-policy evaluation of fresh samples on held-out prompts."""
    out = tmp_path / "mon"
    eval_prompts = lab_rl["root"] / "lab" / "eval_prompts.jsonl"
    code = main(["rl", "--prompts", str(lab_rl["prompts"]), "--out", str(out), "--policy.model",
                 str(lab_rl["policy"]), "--reward.models", "lab-gold", "--steps", "4", "--prompts-per-step", "4",
                 "--generation.group-size", "4", "--generation.max-new-tokens", "12", "--policy.lr", "1e-3",
                 "--kl.coef", "0.05", "--save-every", "0", "--no-progress", "--monitor.enabled",
                 "--monitor.onpolicy.prompts", str(eval_prompts), "--monitor.onpolicy.max-prompts", "6",
                 "--monitor.onpolicy.every", "2", "--monitor.kl.budget", "1e-9", "--monitor.kl.alarm.action", "stop",
                 "--no-monitor.latent.enabled", "--monitor.sycophancy.max-prompts", "4"])
    assert code == 0
    err = capsys.readouterr().err
    alarms = _lines(out / "alarms.jsonl")
    assert [(a["step"], a["detector"], a["action"]) for a in alarms if a["detector"] == "kl"] == [(2, "kl", "stop")]
    assert "[monitor] step 2 CRITICAL kl: KL" in err and "-> stop" in err  # the section keeps its severity
    assert json.loads((out / "rl.json").read_text())["steps"] == 2
    rows = _lines(out / "monitor.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[0]["monitor/onpolicy/pairs"] >= 1 and "monitor/length/length_mean" in rows[0]
    assert "monitor/sycophancy/agree_rate" in rows[0]
    saved = load_config(MonitoredRLConfig, out / "config.yaml")
    assert saved.monitor.enabled and saved.monitor.kl.budget == 1e-9
