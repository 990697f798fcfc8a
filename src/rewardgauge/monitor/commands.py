"""The monitor on the command line: inside ``rewardgauge rl`` (its ``monitor:`` config section and the
run-directory callback that carries out its alarms), and ``rewardgauge monitor import|status`` for the human
labelling queue of the on-policy evaluation.

In ``rewardgauge rl`` (``monitor.enabled``), after every step ``RLMonitor`` hands the step's samples and
metrics to the monitor (every ``monitor.every`` steps; the on-policy evaluation samples the current policy
on held-out prompts every ``monitor.onpolicy.every``), writes its metrics to OUT/monitor.jsonl and its alarms
to OUT/alarms.jsonl and the console as they happen, and asks the RL loop to carry out the strongest action:
``warn`` only logs, ``raise_kl`` multiplies the KL coefficient by ``monitor.kl_raise_factor``, ``rollback``
goes back to the newest checkpoint at or before the alarm's last healthy step and raises the KL coefficient
too (the sampling seeds depend on the step, so an unchanged run would replay the same steps), at most
``monitor.max_rollbacks`` times, after which it stops; ``stop`` ends the run with a checkpoint. It sits here,
on top of the layers, because it joins the monitor with the RL recipe and the lab's words, which the
monitor package never imports.

During RL with ``monitor.onpolicy.labeller: human:QUEUE`` the monitor exports the pairs it wants labelled
into QUEUE/to_label/ (JSONL and CSV); annotators fill in ``preferred`` (a, b or tie) and optionally
``strength`` (1-3); ``rewardgauge monitor import`` checks their file and adds it to the queue, and the running
monitor uses the labels at its next step.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rewardgauge.cli import group
from rewardgauge.data.records import Prompt
from rewardgauge.monitor.alarms import AlarmSink
from rewardgauge.monitor.detectors.sycophancy import FalsePremiseProbe
from rewardgauge.monitor.monitor import Monitor, MonitorConfig, Observation, from_main_process
from rewardgauge.monitor.rollouts import Rollouts
from rewardgauge.rewards.base import RewardModel
from rewardgauge.train.config import RLConfig
from rewardgauge.train.rundir import ALARMS, Control, StepState

MONITOR_LOG = "monitor.jsonl"


@dataclass
class MonitoredRLConfig(RLConfig):
    """``rewardgauge rl``'s config: the RL recipe's, and the monitor's section (off unless enabled)."""

    monitor: MonitorConfig = field(default_factory=MonitorConfig)

    def validate(self) -> None:
        super().validate()
        self.monitor.validate()


class RLMonitor:
    """The monitor as a callback of ``train.rl.run_rl`` (module docstring)."""

    def __init__(self, monitor: Monitor, kl_raise_factor: float = 2.0, max_rollbacks: int = 2):
        self.monitor, self.kl_raise_factor, self.max_rollbacks = monitor, kl_raise_factor, max_rollbacks
        self.rollbacks = 0
        self.current = None  # this step's StepRollouts: its sampler is the current policy's
        self._echo = monitor.sink.echo

    def sample(self, prompts: Sequence[Prompt], n: int) -> list[list[str]]:
        """The monitor's sampler: fresh samples of the policy as it is now."""
        if self.current is None:
            raise RuntimeError("the monitor sampled before the first RL step")
        return self.current.sample(prompts, n)

    def __call__(self, state: StepState) -> Control | None:
        self.current = state.rollouts
        if state.rollouts is None:
            return None
        decision = None
        if state.accelerator is None or state.accelerator.is_main_process:
            if state.run is not None:
                self.monitor.sink = AlarmSink(write=state.run.log(ALARMS).append, echo=self._echo)
            r = state.rollouts
            rollouts = Rollouts(r.prompts, r.responses, r.scores.reward, scores=r.scores, lengths=r.lengths,
                                gold=None if r.gold is None else r.gold.reward, metrics=dict(state.metrics or {}))
            observation = self.monitor.observe(state.step, rollouts)
            if state.run is not None and observation.metrics:
                state.run.log(MONITOR_LOG).append([{"step": state.step, **{
                    k: v for k, v in observation.metrics.items() if v is not None}}])
            decision = self.decide(observation)
        decision = from_main_process(decision)
        return None if decision is None else Control(**decision)

    def decide(self, observation: Observation) -> dict[str, Any] | None:
        """The Control fields for the observation's strongest action (None: nothing to do)."""
        action = observation.action
        if action == "stop":
            return {"stop": True}
        if action == "rollback":
            target = observation.rollback_to
            if target is None or self.rollbacks >= self.max_rollbacks:
                why = "no healthy step known" if target is None else f"{self.rollbacks} roll backs already"
                if self._echo is not None:
                    self._echo(f"[monitor] step {observation.step}: cannot roll back ({why}); stopping instead")
                return {"stop": True}
            self.rollbacks += 1
            return {"rollback_to": target, "kl_coef_factor": self.kl_raise_factor}
        if action == "raise_kl":
            return {"kl_coef_factor": self.kl_raise_factor}
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"monitor": self.monitor.state_dict(), "rollbacks": self.rollbacks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.monitor.load_state_dict(state.get("monitor", {}))
        self.rollbacks = int(state.get("rollbacks", 0))


def build_rl_monitor(cfg: MonitoredRLConfig, reward: RewardModel, device: str | None = None) -> RLMonitor:
    """The monitor of an RL run: the probe words follow the prompts (the lab's for lab prompts), and with lab
    prompts the sycophancy probes are the run's false-premise prompts unless ``monitor.sycophancy.probes``
    names a file. Reads every file the section names, before the run starts."""
    from rewardgauge.audit.commands import choose_phrases
    from rewardgauge.monitor.build import build_monitor
    from rewardgauge.train.rollout import load_rl_prompts

    mcfg = cfg.monitor
    prompts = [p.prompt for p in load_rl_prompts(cfg.prompts)]
    phrases = choose_phrases(mcfg.probes, prompts, cfg.prompts)
    false_premises = lab_false_premises(prompts, mcfg.sycophancy.max_prompts) if phrases.name == "lab" else []
    holder: list[RLMonitor] = []
    monitor = build_monitor(mcfg, reward, phrases, sampler=lambda ps, n: holder[0].sample(ps, n),
                            false_premises=false_premises, device=device, seed=cfg.seed)
    for name, why in monitor.skipped.items():
        print(f"[monitor] {name} left out: {why}")
    holder.append(RLMonitor(monitor, mcfg.kl_raise_factor, mcfg.max_rollbacks))
    return holder[0]


def lab_false_premises(prompts: Sequence[Prompt], limit: int) -> list[FalsePremiseProbe]:
    """The lab prompts that state a false claim ("i think 7 + 5 is 13 . right ?"), with the lab's agreeing
    answer and the gold-best (correcting) one."""
    from rewardgauge.lab import language as L
    from rewardgauge.lab.world import best_response

    probes, seen = [], set()
    for prompt in prompts:
        if not isinstance(prompt, str) or prompt in seen:
            continue
        info = L.parse_prompt(prompt)
        if info.family == "premise" and not info.claim_true:
            seen.add(prompt)
            probes.append(FalsePremiseProbe(prompt, L.AGREE, best_response(prompt)))
        if len(probes) >= limit:
            break
    return probes


def register(sub: argparse._SubParsersAction) -> None:
    monitor = group(sub, "monitor", "the reward-model health monitor: its human labelling queue")
    p = monitor.add_parser("import", help="add annotators' label files to a queue",
                           description="Check label files (JSONL or the exported CSV with 'preferred' filled in: "
                                       "id, preferred a|b|tie, optional strength and annotator) and copy them into "
                                       "QUEUE/labels/, where the monitor reads them. A bad row stops with its "
                                       "file, line and field, and nothing is imported.")
    p.add_argument("--queue", required=True, help="the queue folder (monitor.onpolicy.labeller human:QUEUE)")
    p.add_argument("files", nargs="+", help="label files")
    p.set_defaults(func=_import)
    s = monitor.add_parser("status", help="how many comparisons a queue holds and how many are labelled",
                           description="Print one JSON line: comparisons exported, labelled (by at least one "
                                       "annotator), labels in all, and the batches still waiting.")
    s.add_argument("--queue", required=True, help="the queue folder")
    s.set_defaults(func=_status)


def _queue(path: str):
    from pathlib import Path

    from rewardgauge.errors import InputError
    from rewardgauge.monitor.labellers import HumanQueue

    queue = HumanQueue(path)
    if not Path(path).is_dir() or not queue.comparisons_file.is_file():
        raise InputError("not a labelling queue (no comparisons.jsonl: the monitor has exported nothing here)",
                         path=path, field="queue")
    return queue


def _import(args: argparse.Namespace) -> int:
    queue = _queue(args.queue)
    for path in args.files:  # every file checked before any is copied: nothing half-imported
        queue.check_labels(path)
    counts = {path: queue.import_labels(path) for path in args.files}
    print(json.dumps({"imported": counts, **_counts(queue)}, sort_keys=True))
    return 0


def _status(args: argparse.Namespace) -> int:
    print(json.dumps(_counts(_queue(args.queue)), sort_keys=True))
    return 0


def _counts(queue) -> dict:
    from rewardgauge.io import iter_jsonl

    exported = {row["id"]: row.get("step") for _, row in iter_jsonl(queue.comparisons_file)}
    labels = queue.labels()
    waiting = sorted({step for key, step in exported.items() if key not in labels and step is not None})
    return {"exported": len(exported), "labelled": sum(k in labels for k in exported),
            "steps_waiting": waiting}
