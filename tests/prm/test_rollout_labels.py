"""Rollout step labels against hand-built cases where the right labels are known (a scripted policy)."""

import json

import pytest

from rewardgauge.cli import main
from rewardgauge.data.steps import LAB_SEPARATOR, StepRecord, load_step_records, save_step_records
from rewardgauge.errors import InputError
from rewardgauge.lab.steps import answer_is_right, gold_step_labels
from rewardgauge.train.rollout_labels import RolloutConfig, label_with_rollouts, prefix_text

PROMPT = "compute 2 + 3 * 4 ."  # = 14


class ScriptedPolicy:
    """Completions looked up by prefix: the right labels follow from the script by counting."""

    def __init__(self, script: dict[str, list[str]], fail_after: int | None = None):
        self.script, self.calls, self.fail_after = script, [], fail_after

    def __call__(self, prompts, prefixes, n, seed):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt  # the run is interrupted here
        self.calls.append((list(prefixes), n, seed))
        return [(self.script[p] * n)[:n] for p in prefixes]


def lab_checker(prompt, response, reference):
    return answer_is_right(prompt, response)


# A slip at step 2: "2 + 12 = 15". From after step 1 a solver succeeds 3 times in 4; from after the wrong
# step 2 it carries the error and never does. The solution's own answer is wrong.
SLIP = StepRecord(PROMPT, ["3 * 4 = 12 .", "2 + 12 = 15 .", "answer 15 ."], reference="14")
# The lucky chain: a wrong first step, yet the right answer. A solver continuing from the wrong step 1
# succeeds once in 4 (it sometimes recomputes); the final answer is right.
LUCKY = StepRecord(PROMPT, ["3 * 4 = 11 .", "2 + 12 = 14 .", "answer 14 ."], reference="14")
SCRIPT = {
    "3 * 4 = 12 . ": ["2 + 12 = 14 . answer 14 .", "2 + 12 = 14 . answer 14 .", "2 + 12 = 15 . answer 15 .",
                      "2 + 12 = 14 . answer 14 ."],
    "3 * 4 = 12 . 2 + 12 = 15 . ": ["answer 15 ."],
    "3 * 4 = 11 . ": ["2 + 11 = 13 . answer 13 .", "2 + 12 = 14 . answer 14 .", "2 + 11 = 13 . answer 13 .",
                      "2 + 11 = 13 . answer 13 ."],
    "3 * 4 = 11 . 2 + 12 = 14 . ": ["answer 14 ."],
}


def cfg(**kw):
    return RolloutConfig(**{"rollouts": 4, "estimate": "soft", "seed": 5, "separator": LAB_SEPARATOR,
                            "chunk_size": 1, **kw})


def test_prefixes_end_where_the_next_step_starts():
    assert prefix_text(SLIP.steps, 0, LAB_SEPARATOR) == "3 * 4 = 12 . "
    assert prefix_text(SLIP.steps, 1, LAB_SEPARATOR) == "3 * 4 = 12 . 2 + 12 = 15 . "
    assert prefix_text(["a", "b"], 0, "\n") == "a\n"


@pytest.mark.parametrize("estimate, slip, lucky", [
    ("soft", [0.75, 0.0, 0.0], [0.25, 1.0, 1.0]),
    ("hard", [True, False, False], [True, True, True]),
])
def test_hand_built_cases_get_their_known_labels(tmp_path, estimate, slip, lucky):
    policy = ScriptedPolicy(SCRIPT)
    summary = label_with_rollouts([SLIP, LUCKY], policy, lab_checker, tmp_path, cfg(estimate=estimate),
                                  progress=False)
    got = load_step_records(tmp_path / "labels.jsonl")
    assert got[0].labels == slip and got[1].labels == lucky
    assert all(s == "rollout" for r in got for s in r.sources)
    assert got[0].meta["rollouts"] == {"right": [3, 0, 0], "n": 4}
    # chunk c (here one record each) is sampled with seed (seed, c); the last step is judged without rollouts
    assert [(c[1], c[2]) for c in policy.calls] == [(4, 5 * 1_000_003), (4, 5 * 1_000_003 + 1)]
    assert policy.calls[0][0] == ["3 * 4 = 12 . ", "3 * 4 = 12 . 2 + 12 = 15 . "]
    assert summary["records"] == 2 and summary["labelled_steps"] == 6


def test_consensus_keeps_only_labels_the_judge_agrees_with(tmp_path):
    summary = label_with_rollouts([SLIP, LUCKY], ScriptedPolicy(SCRIPT), lab_checker, tmp_path, cfg(estimate="hard"),
                                  judge=gold_step_labels, progress=False)
    slip, lucky = load_step_records(tmp_path / "labels.jsonl")
    # the gold judge says SLIP is [right, wrong, wrong] (agrees) and LUCKY [wrong, right, right]: the rollout
    # label of LUCKY's first step (hard: true) disagrees and is dropped
    assert slip.labels == [True, False, False] and slip.sources == ["consensus"] * 3
    assert lucky.labels == [None, True, True] and lucky.sources == [None, "consensus", "consensus"]
    assert summary["consensus_kept"] == 5 and summary["consensus_judged"] == 6


def test_interrupted_run_resumes_to_the_same_labels(tmp_path):
    records = [SLIP, LUCKY, SLIP, LUCKY, SLIP]
    whole = tmp_path / "whole"
    first = ScriptedPolicy(SCRIPT)
    label_with_rollouts(records, first, lab_checker, whole, cfg(chunk_size=2), progress=False)
    # chunks of 2 records: one batched call each, 4 prefixes (2 per record) in the first
    assert [len(c[0]) for c in first.calls] == [4, 4, 2]

    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        label_with_rollouts(records, ScriptedPolicy(SCRIPT, fail_after=1), lab_checker, cut, cfg(chunk_size=2),
                            progress=False)
    assert not (cut / "labels.jsonl").exists()
    with open(cut / "progress.jsonl", "a") as f:
        f.write('{"index": 2, "ri')  # a line cut by the crash
    again = ScriptedPolicy(SCRIPT)
    label_with_rollouts(records, again, lab_checker, cut, cfg(chunk_size=2), resume=True, progress=False)
    assert [c[2] for c in again.calls] == [5 * 1_000_003 + 1, 5 * 1_000_003 + 2]  # only the chunks not done
    assert (cut / "labels.jsonl").read_text() == (whole / "labels.jsonl").read_text()
    with pytest.raises(InputError, match="field 'rollouts': differs from the run being resumed"):
        label_with_rollouts(records, again, lab_checker, cut, cfg(chunk_size=2, rollouts=8), resume=True,
                            progress=False)
    with pytest.raises(InputError, match="field 'records_fingerprint': differs"):
        label_with_rollouts(records[:4] + [LUCKY], again, lab_checker, cut, cfg(chunk_size=2), resume=True,
                            progress=False)


def test_hf_policy_rollouts_from_the_command_line(prm_lab, tmp_path):
    from rewardgauge.modeling.sampling import HFSampler

    sampler = HFSampler.from_pretrained(prm_lab["model"], device="cpu", max_new_tokens=6)
    a = sampler([PROMPT, PROMPT], ["3 * 4 = 12 . ", ""], 3, seed=1)
    assert [len(x) for x in a] == [3, 3] and all(isinstance(t, str) for x in a for t in x)
    assert a == sampler([PROMPT, PROMPT], ["3 * 4 = 12 . ", ""], 3, seed=1)  # same seed, same samples

    data = tmp_path / "in.jsonl"
    save_step_records(data, [SLIP, LUCKY])
    out = tmp_path / "out"
    args = ["prm", "label", "--method", "rollouts", "--data", str(data), "--policy", str(prm_lab["model"]),
            "--out", str(out), "--checker", "numeric", "--rollouts", "2", "--max-new-tokens", "6",
            "--separator", " . ", "--no-progress", "--device", "cpu"]
    assert main(args) == 0
    got = load_step_records(out / "labels.jsonl")
    # an untrained policy babbles: no rollout reaches 14, so only the lucky chain's own last step is right
    assert [r.labels for r in got] == [[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    assert json.loads((out / "label_config.json").read_text())["identity"]["checker"] == "numeric"
    assert main(args + ["--resume"]) == 0  # everything was done: nothing is sampled again
    assert load_step_records(out / "labels.jsonl") == got


def test_numeric_checker_needs_references(prm_lab, tmp_path, capsys):
    data = tmp_path / "in.jsonl"
    save_step_records(data, [StepRecord(PROMPT, ["answer 14 ."])])
    assert main(["prm", "label", "--data", str(data), "--policy", str(prm_lab["model"]), "--out",
                 str(tmp_path / "o"), "--no-progress"]) == 2
    assert f"{data}:1: field 'reference'" in capsys.readouterr().err


def test_propose_then_labels_with_a_judge(tmp_path):
    data = tmp_path / "in.jsonl"
    save_step_records(data, [SLIP, LUCKY])
    assert main(["prm", "label", "--method", "propose", "--proposer", "lab-gold", "--data", str(data),
                 "--out", str(tmp_path / "p"), "--separator", " . "]) == 0
    slip, lucky = load_step_records(tmp_path / "p" / "labels.jsonl")
    assert slip.labels == [True, False, False] and lucky.labels == [False, True, True]
    assert set(slip.sources) == {"proposed"}
