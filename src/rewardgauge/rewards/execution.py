"""Execution as a reward: the fraction of a task's hidden tests a completion passes, run in the sandbox.

A verifiable reward for RL on code (the "RL with verifiable rewards" setting): no learned model to exploit,
only hidden tests, executed in isolation and scored outside the candidate's process
(``rewardgauge.sandbox.tasks``).

Use it from an RL loop like any RewardModel::

    from rewardgauge.rewards.execution import ExecutionReward
    from rewardgauge.sandbox.tasks import load_tasks

    tasks = load_tasks("mbpp.jsonl")
    reward = ExecutionReward(tasks, time_budget_s=30.0)
    prompts = [t.prompt for t in batch]           # the policy sees Task.public(), never the tests
    completions = policy.generate(prompts)
    scores = reward.score(prompts, completions, meta=[{"task_id": t.task_id} for t in batch])
    # scores.reward: [B] in [0, 1]; scores.aspects["passed"]: 1.0 where every hidden test passed;
    # scores.extras["outcome"]: per-completion details (status, tests passed, first error)

Each completion's task is ``meta[i]["task_id"]``. Without meta, the prompt must be the prompt text of exactly
one task (or a chat whose last user message is). A completion is appended to the task's prefix (HumanEval
continues the prompt; MBPP tasks have none), after taking the code out of a fenced ```python block when
there is one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from rewardgauge.data.records import Prompt
from rewardgauge.rewards.base import Meta, RewardModel, Scores
from rewardgauge.sandbox.core import Limits, Sandbox
from rewardgauge.sandbox.tasks import Task, program_for, run_tasks


class ExecutionReward(RewardModel):
    """Scores completions by the fraction of their task's hidden tests passed.

    tasks:         the tasks completions answer (task ids must be distinct).
    sandbox:       where to run (default: a Sandbox with ``limits``, backend probed once).
    limits:        per-execution limits (default: 10 s, 512 MiB).
    time_budget_s: wall-clock budget for one ``score`` call; executions that would start after it get
                   reward 0 (status "budget_exhausted") and running ones are cut at it. None: no budget.
    workers:       parallel executions (default: CPU count).
    extract_code:  take the code from a fenced block when a completion has one.

    ``score(...).extras["outcome"]`` holds each completion's ``TaskOutcome.to_dict()`` (task_id, passed,
    tests_passed, tests_total, status, backend, duration_s, error).
    """

    name = "execution"
    # A score call is one batch: the sandbox's worker pool spans the whole call, and the time budget,
    # computed when the batch starts, is then the budget of the call.
    batch_size = None

    def __init__(self, tasks: Sequence[Task], sandbox: Sandbox | None = None, limits: Limits | None = None,
                 time_budget_s: float | None = None, workers: int | None = None, extract_code: bool = True):
        if time_budget_s is not None and time_budget_s <= 0:
            raise ValueError(f"time_budget_s must be positive, got {time_budget_s}")
        self.sandbox = sandbox or Sandbox(limits=limits or Limits())
        self.limits = limits or self.sandbox.limits
        self.time_budget_s = time_budget_s
        self.workers = workers
        self.extract_code = extract_code
        self._by_id: dict[str, Task] = {}
        self._by_prompt: dict[str, list[Task]] = {}
        for task in tasks:
            if task.task_id in self._by_id:
                raise ValueError(f"two tasks have task_id {task.task_id!r}")
            self._by_id[task.task_id] = task
            self._by_prompt.setdefault(task.prompt, []).append(task)

    def _task_for(self, prompt: Prompt, meta: Meta) -> Task:
        """``meta["task_id"]``'s task, or else the one task whose prompt text the prompt is; KeyError otherwise."""
        if "task_id" in meta:
            task = self._by_id.get(meta["task_id"])
            if task is None:
                raise KeyError(f"no task with task_id {meta['task_id']!r}")
            return task
        text = _user_text(prompt)
        found = self._by_prompt.get(text, [])
        if len(found) != 1:
            why = "no task for prompt" if not found else f"{len(found)} tasks share prompt"
            raise KeyError(f"{why} {text[:80]!r}: pass meta with each completion's task_id")
        return found[0]

    def score_batch(self, prompts: list[Prompt], responses: list[str], meta: list[Meta]) -> Scores:
        deadline = None if self.time_budget_s is None else time.monotonic() + self.time_budget_s
        jobs = []
        for prompt, response, m in zip(prompts, responses, meta):
            task = self._task_for(prompt, m)
            jobs.append((task, program_for(task, response, extract=self.extract_code)))
        outcomes = run_tasks(self.sandbox, jobs, limits=self.limits, workers=self.workers, deadline=deadline)
        return Scores(reward=torch.tensor([o.fraction for o in outcomes], dtype=torch.float32),
                      aspects={"passed": torch.tensor([float(o.passed) for o in outcomes])},
                      extras={"outcome": [o.to_dict() for o in outcomes]})


def _user_text(prompt: Prompt) -> str:
    """A task's prompt text as the policy saw it: the prompt itself, or a chat's last user message."""
    if isinstance(prompt, str):
        return prompt
    users = [m.get("content", "") for m in prompt if m.get("role") == "user"]
    return users[-1] if users else ""


def task_prompts(path) -> list[tuple[str, dict]]:
    """``(prompt, {"task_id": ...})`` of each task in a code-task file: only what the policy may see
    (``Task.public``), never the hidden tests."""
    from rewardgauge.sandbox.tasks import load_tasks

    return [(t.public()["prompt"], {"task_id": t.task_id}) for t in load_tasks(path)]
