"""The RewardModel interface: Scores (select, to, cat, wire format), the one batching path (length buckets,
input order, meta), score_pairs, meta routing of the execution reward, and thread-safety of real models."""

import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from rewardgauge.data.records import PreferencePair
from rewardgauge.rewards.base import RewardModel, Scores
from rewardgauge.rewards.pairs import score_pairs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))

import synthetic  # noqa: E402

# ---- Scores ------------------------------------------------------------------------------------------

def _full(n: int = 4, offset: float = 0.0) -> Scores:
    """Scores with every field filled; values like 0.1 are not exact in float32, which the round trip must keep."""
    g = torch.Generator().manual_seed(int(offset))
    return Scores(
        reward=torch.randn(n, generator=g) + 0.1,
        members=torch.randn(3, n, generator=g),
        aspects={"tone": torch.randn(n, generator=g), "safety": torch.full((n,), 0.1)},
        uncertainty=torch.rand(n, generator=g),
        steps=[torch.randn(i % 3 + 1, generator=g) for i in range(n)],  # 1, 2, 3, 1 ... steps
        extras={"outcome": [{"status": "ok" if i % 2 else "timeout", "tests_passed": i} for i in range(n)],
                "id": [f"r{int(offset)}-{i}" for i in range(n)]},
    )


def _assert_same(a: Scores, b: Scores) -> None:
    """Exactly equal, field by field (dtypes included)."""
    assert a.to_dict() == b.to_dict()
    for x, y in [(a.reward, b.reward), (a.members, b.members), (a.uncertainty, b.uncertainty)]:
        assert (x is None) == (y is None) and (x is None or (x.dtype == y.dtype and torch.equal(x, y)))


def test_select_keeps_every_field_in_the_order_asked():
    s = _full()
    sub = s.select([2, 0, 2])
    assert torch.equal(sub.reward, s.reward[[2, 0, 2]])
    assert torch.equal(sub.members, s.members[:, [2, 0, 2]])
    assert {k: v.tolist() for k, v in sub.aspects.items()} == {k: v[[2, 0, 2]].tolist() for k, v in s.aspects.items()}
    assert torch.equal(sub.uncertainty, s.uncertainty[[2, 0, 2]])
    assert [t.tolist() for t in sub.steps] == [s.steps[2].tolist(), s.steps[0].tolist(), s.steps[2].tolist()]
    assert sub.extras["id"] == ["r0-2", "r0-0", "r0-2"] and sub.extras["outcome"][1] == s.extras["outcome"][0]
    assert len(s.select(torch.tensor([3]))) == 1 and len(s.select([])) == 0
    minimal = Scores(reward=torch.tensor([1.0, 2.0])).select([1])
    assert minimal.reward.tolist() == [2.0] and minimal.members is None and minimal.extras is None


def test_to_moves_every_tensor():
    moved = _full().to("meta")  # a device every machine has: tensors without data
    assert moved.reward.device.type == "meta" and moved.members.device.type == "meta"
    assert moved.uncertainty.device.type == "meta"
    assert {v.device.type for v in moved.aspects.values()} == {"meta"}
    assert {t.device.type for t in moved.steps} == {"meta"}
    assert moved.extras == _full().extras


def test_wire_format_round_trip_is_exact_and_json_safe():
    s = _full(5, offset=3)
    wire = json.loads(json.dumps(s.to_dict()))
    assert set(wire) == {"reward", "members", "aspects", "uncertainty", "steps", "extras"}
    assert isinstance(wire["reward"][0], float) and len(wire["members"]) == 3 and len(wire["members"][0]) == 5
    back = Scores.from_dict(wire)
    assert back.reward.dtype == torch.float32
    assert torch.equal(back.reward, s.reward) and torch.equal(back.members, s.members)
    assert all(torch.equal(back.aspects[k], s.aspects[k]) for k in s.aspects)
    assert torch.equal(back.uncertainty, s.uncertainty)
    assert all(torch.equal(a, b) for a, b in zip(back.steps, s.steps, strict=True))
    assert back.extras == s.extras
    # only what is there goes on the wire
    assert Scores(reward=torch.tensor([0.5])).to_dict() == {"reward": [0.5]}
    assert Scores.from_dict({"reward": [0.5]}).members is None


@pytest.mark.parametrize("bad, match", [
    ({"members": [[1.0]]}, "missing field 'reward'"),
    ({"reward": [1.0], "score": [1.0]}, "unknown fields \\['score'\\]"),
    ({"reward": [[1.0]]}, "'reward': expected 1 dimension"),
    ({"reward": ["x"]}, "'reward'"),
    ({"reward": [1.0, 2.0], "members": [[1.0]]}, "members \\(1, 1\\) \\(want \\[K, 2\\]\\)"),
    ({"reward": [1.0], "aspects": [1.0]}, "'aspects': expected an object"),
    ({"reward": [1.0], "extras": {"outcome": []}}, "extras\\['outcome'\\] with 0 values"),
])
def test_from_dict_names_the_bad_field(bad, match):
    with pytest.raises(ValueError, match=match):
        Scores.from_dict(bad)


def test_cat_joins_every_field_and_refuses_mixed_parts():
    a, b = _full(4, offset=1), _full(3, offset=2)
    both = Scores.cat([a, b])
    _assert_same(both.select(range(4)), a)
    _assert_same(both.select(range(4, 7)), b)
    assert both.members.shape == (3, 7) and len(both.steps) == 7 and len(both.extras["id"]) == 7
    with pytest.raises(ValueError, match="parts differ"):
        Scores.cat([a, Scores(reward=torch.zeros(2))])
    with pytest.raises(ValueError, match="at least one part"):
        Scores.cat([])


def test_scores_check_that_every_field_has_one_entry_per_response():
    with pytest.raises(ValueError, match="uncertainty \\(3,\\) \\(want \\[2\\]\\)"):
        Scores(reward=torch.zeros(2), uncertainty=torch.zeros(3))
    with pytest.raises(ValueError, match="steps for 1 responses"):
        Scores(reward=torch.zeros(2), steps=[torch.zeros(1)])


# ---- the batching path -------------------------------------------------------------------------------

class _Recorder(RewardModel):
    """reward = len(response) + 100 * meta["x"]; records each batch it is given."""

    def __init__(self, batch_size, sort=True):
        self.batch_size, self.batches = batch_size, []
        if sort:
            self.sort_key = lambda prompt, response: len(response)

    def score_batch(self, prompts, responses, meta):
        self.batches.append(list(responses))
        return Scores(reward=torch.tensor([len(r) + 100.0 * m.get("x", 0) for r, m in zip(responses, meta)]),
                      extras={"response": list(responses)})


RESPONSES = ["a", "bbbbb", "ccc", "ddddd", "ee", "f"]


def test_sort_key_buckets_longest_first_and_results_come_back_in_input_order():
    rm = _Recorder(batch_size=2)
    meta = [{"x": i} for i in range(6)]
    s = rm.score(["p"] * 6, RESPONSES, meta=meta)
    assert rm.batches == [["bbbbb", "ddddd"], ["ccc", "ee"], ["a", "f"]]  # ties keep input order
    assert s.extras["response"] == RESPONSES
    assert s.reward.tolist() == [1.0, 105.0, 203.0, 305.0, 402.0, 501.0]  # meta travelled with its response


def test_without_sort_key_batches_keep_input_order():
    rm = _Recorder(batch_size=4, sort=False)
    s = rm.score(["p"] * 6, RESPONSES)
    assert rm.batches == [RESPONSES[:4], RESPONSES[4:]]
    assert s.reward.tolist() == [1.0, 5.0, 3.0, 5.0, 2.0, 1.0]  # no meta: every meta is {}


def test_batch_size_none_scores_a_call_as_one_batch():
    rm = _Recorder(batch_size=None)
    rm.score(["p"] * 6, RESPONSES)
    assert rm.batches == [sorted(RESPONSES, key=len, reverse=True)]


def test_lengths_are_checked_and_named():
    rm = _Recorder(batch_size=2)
    with pytest.raises(ValueError, match="got 2 prompts, 1 responses"):
        rm.score(["p", "q"], ["a"])
    with pytest.raises(ValueError, match="got 2 prompts, 2 responses, 3 meta"):
        rm.score(["p", "q"], ["a", "b"], meta=[{}, {}, {}])
    assert len(rm.score([], [])) == 0 and rm.batches == []
    assert rm(["p"], ["abc"], meta=[{"x": 1}]).tolist() == [103.0]  # __call__: the reward tensor


def test_a_batch_with_the_wrong_count_is_an_error():
    class Short(RewardModel):
        def score_batch(self, prompts, responses, meta):
            return Scores(reward=torch.zeros(len(prompts) - 1))

    with pytest.raises(RuntimeError, match="Short.score_batch gave 1 scores for 2 responses"):
        Short().score(["p", "q"], ["a", "b"])


def test_score_pairs_scores_both_sides_in_one_call():
    rm = _Recorder(batch_size=64)
    pairs = [PreferencePair(prompt="p", chosen="cccc", rejected="a"),
             PreferencePair(prompt="q", chosen="bb", rejected="dddddd")]
    s = score_pairs(rm, pairs)
    assert len(rm.batches) == 1 and sorted(rm.batches[0]) == sorted(["cccc", "a", "bb", "dddddd"])
    assert s.chosen.extras["response"] == ["cccc", "bb"] and s.rejected.extras["response"] == ["a", "dddddd"]
    assert s.margins.tolist() == [3.0, -4.0]


# ---- execution reward: tasks found through meta ------------------------------------------------------

def _twin_tasks():
    from rewardgauge.sandbox.tasks import Task

    # Two tasks with the same prompt text and different hidden tests.
    return [Task(task_id="inc", prompt="Write f(x).", entry_point="f", tests=["assert f(1) == 2", "assert f(2) == 3"]),
            Task(task_id="dbl", prompt="Write f(x).", entry_point="f", tests=["assert f(1) == 2", "assert f(2) == 4"]),
            Task(task_id="neg", prompt="Write g(x) returning -x.", entry_point="g", tests=["assert g(1) == -1"])]


@pytest.fixture(scope="module")
def execution():
    from rewardgauge.rewards.execution import ExecutionReward
    from rewardgauge.sandbox import Limits, Sandbox

    return ExecutionReward(_twin_tasks(), sandbox=Sandbox(limits=Limits(timeout_s=5.0)), workers=2)


def test_execution_reward_finds_the_task_by_meta_task_id(execution):
    inc, dbl = "def f(x):\n    return x + 1\n", "def f(x):\n    return 2 * x\n"
    s = execution.score(["Write f(x)."] * 4, [inc, inc, dbl, dbl],
                        meta=[{"task_id": "inc"}, {"task_id": "dbl"}, {"task_id": "inc"}, {"task_id": "dbl"}])
    assert s.reward.tolist() == [1.0, 0.5, 0.5, 1.0]
    assert [o["task_id"] for o in s.extras["outcome"]] == ["inc", "dbl", "inc", "dbl"]
    # without meta, a prompt text that two tasks share is refused, and a unique one still finds its task
    with pytest.raises(KeyError, match="2 tasks share prompt 'Write f\\(x\\).'"):
        execution.score(["Write f(x)."], [inc])
    assert execution.score(["Write g(x) returning -x."], ["def g(x):\n    return -x\n"]).reward.tolist() == [1.0]
    with pytest.raises(KeyError, match="no task with task_id 'sq'"):
        execution.score(["Write f(x)."], [inc], meta=[{"task_id": "sq"}])


def test_execution_reward_refuses_duplicate_task_ids():
    from rewardgauge.rewards.execution import ExecutionReward

    tasks = _twin_tasks()
    with pytest.raises(ValueError, match="two tasks have task_id 'inc'"):
        ExecutionReward(tasks + tasks[:1])


# ---- thread-safety: 4 threads at once give exactly the sequential scores ------------------------------

def assert_thread_safe(rm: RewardModel, prompts, responses, meta=None, sizes=(1, 3, 8, 20), repeats: int = 3,
                       comparable=None):
    """Jobs of mixed sizes (one response, a few, several batches' worth), each scored once sequentially and
    then ``repeats`` times from 4 threads at once: every concurrent result must equal its sequential one
    exactly (``comparable`` strips what may differ, such as measured durations)."""
    comparable = comparable or (lambda s: s.to_dict())
    n = len(prompts)
    jobs = [[(start * 5 + i) % n for i in range(size)] for start, size in enumerate(sizes)]

    def run(job):
        return rm.score([prompts[i] for i in job], [responses[i] for i in job],
                        meta=None if meta is None else [meta[i] for i in job])

    expected = [comparable(run(job)) for job in jobs]
    start = threading.Barrier(4)

    def worker(w):
        start.wait()  # all four begin together
        return [(j, comparable(run(jobs[j]))) for r in range(repeats) for j in range(len(jobs)) if (j + r + w) % 4 != 0]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = [x for part in pool.map(worker, range(4)) for x in part]
    assert len(results) > 10
    mismatched = [j for j, got in results if got != expected[j]]
    assert not mismatched, f"{len(mismatched)} of {len(results)} concurrent results differ from sequential (jobs {mismatched[:10]})"


@pytest.fixture(scope="module")
def lang(tmp_path_factory):
    from rewardgauge.modeling.policy import init_model

    root = tmp_path_factory.mktemp("interface")
    paths = {"train": synthetic.write_jsonl(root / "train.jsonl", synthetic.make_pairs(64, seed=0)),
             "heldout": synthetic.write_jsonl(root / "heldout.jsonl", synthetic.make_pairs(40, seed=1))}
    init_model(list(paths.values()), root / "tiny", preset="tiny")
    return {**paths, "model": root / "tiny", "root": root}


def _texts(lang):
    from rewardgauge.data.io import load_pairs

    pairs = load_pairs(lang["heldout"])
    return [p.prompt for p in pairs], [p.chosen if i % 2 else p.rejected for i, p in enumerate(pairs)]


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_hf_reward_model_is_thread_safe_and_never_switches_the_model_mode(lang, mode):
    """The train-mode case is a model being trained (dropout off, as rm train does): scoring it must neither
    switch it to eval mode, even for a moment, nor leave it switched."""
    from rewardgauge.modeling.loading import load_sequence_classifier, load_tokenizer
    from rewardgauge.rewards.hf import HFRewardModel

    torch.manual_seed(0)
    model = load_sequence_classifier(lang["model"], num_labels=1)
    model.train(mode == "train")
    modes = []
    model.register_forward_pre_hook(lambda module, args: modes.append(module.training))
    rm = HFRewardModel(model, load_tokenizer(lang["model"]), batch_size=4)
    prompts, responses = _texts(lang)
    assert_thread_safe(rm, prompts, responses)
    assert model.training == (mode == "train")
    assert set(modes) == {mode == "train"}


@pytest.fixture(scope="module")
def small_ensembles(lang, tmp_path_factory):
    """A K=3 ensemble in each form, trained for 2 steps: enough for members that differ."""
    from rewardgauge.train.config import RewardTrainConfig
    from rewardgauge.train.ensemble import train_ensemble

    root = tmp_path_factory.mktemp("ensembles")
    out = {}
    for form in ("independent", "shared", "lora"):
        out[form] = root / form
        train_ensemble(RewardTrainConfig(model=str(lang["model"]), data=str(lang["train"]), out=str(out[form]),
                                         members=3, ensemble_form=form, max_steps=2, batch_size=16, save_every=0,
                                         progress=False, reference_size=16, lr=5e-3))
    return out


@pytest.mark.parametrize("form", ["independent", "shared", "lora"])
def test_ensemble_is_thread_safe(lang, small_ensembles, form):
    from rewardgauge.rewards.ensemble import EnsembleRewardModel

    rm = EnsembleRewardModel.from_pretrained(small_ensembles[form], device="cpu", batch_size=4)
    prompts, responses = _texts(lang)
    members = rm.score(prompts, responses).members
    assert (members[0] - members[1]).abs().max() > 1e-4  # members differ: a swapped adapter would show
    assert_thread_safe(rm, prompts, responses, sizes=(1, 4, 10), repeats=2)


def test_execution_reward_is_thread_safe(execution):
    prompts = ["Write f(x)."] * 4 + ["Write g(x) returning -x."] * 2
    responses = ["def f(x):\n    return x + 1\n", "def f(x):\n    return 2 * x\n", "def f(x):\n    return x + 1\n",
                 "def f(x):\n    raise ValueError('no')\n", "def g(x):\n    return -x\n", "def g(x):\n    return x\n"]
    meta = [{"task_id": t} for t in ("inc", "inc", "dbl", "dbl", "neg", "neg")]

    def comparable(s):  # everything but the measured duration of each run
        wire = s.to_dict()
        wire["extras"]["outcome"] = [{k: v for k, v in o.items() if k != "duration_s"} for o in wire["extras"]["outcome"]]
        return wire

    assert comparable(execution.score(prompts, responses, meta=meta))["reward"] == [1.0, 0.5, 0.5, 0.0, 1.0, 0.0]
    assert_thread_safe(execution, prompts, responses, meta=meta, sizes=(1, 3, 6), repeats=2, comparable=comparable)
