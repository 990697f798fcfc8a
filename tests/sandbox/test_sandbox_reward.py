"""Execution as a reward: fraction of hidden tests passed, per-call time budget, prompt -> task lookup."""

import pytest
import torch
from sandbox_attacks import RecordingSandbox

from rewardgauge.rewards.execution import ExecutionReward
from rewardgauge.sandbox import Limits, Sandbox
from rewardgauge.sandbox.tasks import Task, from_humaneval

TASKS = [
    Task(task_id="sq", prompt="Write sq(x) returning x squared.", entry_point="sq",
         tests=["assert sq(2) == 4", "assert sq(3) == 9", "assert sq(-1) == 1", "assert sq(0) == 0"]),
    from_humaneval({"task_id": "HumanEval/1", "entry_point": "neg", "prompt": "def neg(x):\n    \"\"\"-x\"\"\"\n",
                    "test": "def check(candidate):\n    assert candidate(1) == -1\n    assert candidate(-2) == 2\n"}),
]


@pytest.fixture(scope="module")
def reward():
    return ExecutionReward(TASKS, sandbox=Sandbox(limits=Limits(timeout_s=3.0)), workers=2)


def test_reward_is_the_fraction_of_hidden_tests_passed(reward):
    prompts = [TASKS[0].prompt, "any text", [{"role": "system", "content": "be brief"}, {"role": "user", "content":
                                                                                           TASKS[0].prompt}],
               TASKS[1].prompt, TASKS[1].prompt]
    meta = [None, {"task_id": "sq"}, None, {}, {"task_id": "HumanEval/1"}]
    responses = ["def sq(x):\n    return x * x",
                 "Sure!\n```python\ndef sq(x):\n    return abs(x) * 2 if x else 0\n```",  # right on 2 of 4
                 "import os\nos._exit(0)",
                 "    return -x\n",  # HumanEval: continues the prompt
                 "    return x\n"]
    scores = reward.score(prompts, responses, meta=meta)
    assert scores.reward.dtype == torch.float32
    assert scores.reward.tolist() == [1.0, 0.5, 0.0, 1.0, 0.0]
    assert scores.aspects["passed"].tolist() == [1.0, 0.0, 0.0, 1.0, 0.0]
    outcomes = scores.extras["outcome"]
    assert [o["task_id"] for o in outcomes] == ["sq", "sq", "sq", "HumanEval/1", "HumanEval/1"]
    assert [o["tests_passed"] for o in outcomes] == [4, 2, 0, 2, 0]
    assert [o["error"] is None for o in outcomes] == [True, False, False, True, False]
    assert reward(prompts[:1], responses[:1]).tolist() == [1.0]  # RewardModel.__call__ gives the tensor


def test_unknown_prompt_names_it(reward):
    with pytest.raises(KeyError, match="no task for prompt 'what is 2 \\+ 2'"):
        reward.score(["what is 2 + 2"], ["4"])


def test_time_budget_bounds_one_call():
    """Asserted on what the sandbox reports (status, CPU time), not on the wall clock of a shared machine:
    the two loops that start get the budget as their deadline instead of the 20 s limit, and are cut there;
    the other two jobs are never started."""
    sandbox = RecordingSandbox(Sandbox(limits=Limits(timeout_s=20.0)))
    reward = ExecutionReward(TASKS, sandbox=sandbox, time_budget_s=1.0, workers=2)
    scores = reward.score([TASKS[0].prompt] * 4, ["while True: pass"] * 3 + ["def sq(x): return x * x"])
    assert scores.reward.tolist() == [0.0, 0.0, 0.0, 0.0]
    status = [o["status"] for o in scores.extras["outcome"]]
    assert status == ["timeout", "timeout", "budget_exhausted", "budget_exhausted"]
    assert len(sandbox.runs) == 2
    for limits, res in sandbox.runs:
        assert limits.timeout_s <= 1.0 and limits.cpu_seconds < 20  # cut to the budget left
        # ended by the cut wall deadline, before the CPU limit (2 s for a deadline under 1 s) could end it
        assert res.status == "timeout" and res.cpu_s < limits.cpu_seconds, res
    with pytest.raises(ValueError, match="time_budget_s must be positive"):
        ExecutionReward(TASKS, time_budget_s=0)
