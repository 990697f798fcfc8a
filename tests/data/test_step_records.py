"""Step-labelled records: text <-> steps, JSONL with validation, GSM8K and lab adapters, answers."""

import json
from pathlib import Path

import pytest

from rewardgauge.data.steps import (
    LAB_SEPARATOR,
    StepRecord,
    extract_answer,
    first_error,
    gsm8k_reference_records,
    gsm8k_solution_records,
    join_steps,
    load_gsm8k,
    load_step_records,
    numeric_match,
    save_step_records,
    split_steps,
    step_spans,
)
from rewardgauge.errors import InputError

GSM8K = Path(__file__).resolve().parents[3] / "shared" / "data" / "gsm8k"
if not GSM8K.is_dir():
    GSM8K = Path("/work/shared/data/gsm8k")


def test_split_and_join_steps():
    lab = "2 * 3 = 6 . 4 + 6 = 10 . answer 10 ."
    steps = split_steps(lab, LAB_SEPARATOR)
    assert steps == ["2 * 3 = 6 .", "4 + 6 = 10 .", "answer 10 ."]
    assert join_steps(steps, LAB_SEPARATOR) == lab
    text, ends = step_spans(steps, LAB_SEPARATOR)
    assert text == lab and [text[:e] for e in ends] == ["2 * 3 = 6 .", "2 * 3 = 6 . 4 + 6 = 10 .", lab]
    assert split_steps("first\n\nsecond\n", "\n") == ["first", "second"]
    assert join_steps(["a", "b"], "\n") == "a\nb"
    assert split_steps("a ## b ## c", " ## ") == ["a ##", "b ##", "c"]
    with pytest.raises(ValueError):
        split_steps("a", "")


def test_first_error_follows_processbench():
    assert first_error([True, 0.8, False, True]) == 2
    assert first_error([True, True]) == -1
    assert first_error([True, 0.2]) == 1  # a soft value below 0.5 is an error
    assert first_error([True, None, False]) is None  # unknown before the error


def _write(tmp_path, rows, name="steps.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_load_and_save_round_trip(tmp_path):
    rows = [
        {"prompt": "compute 2 * 3 .", "steps": ["2 * 3 = 6 .", "answer 6 ."], "labels": [True, 0.25],
         "sources": ["human", "rollout"], "answer": 6, "reference": "6", "outcome": True, "id": 7},
        {"prompt": "q", "solution": "one\n\ntwo\nstill two\n\nthree", "labels": [None, False, None], "source": "proposed"},
        {"prompt": [{"role": "user", "content": "q"}], "steps": ["only"]},
    ]
    records = load_step_records(_write(tmp_path, rows), separator="\n\n")
    a, b, c = records
    assert a.labels == [True, 0.25] and isinstance(a.labels[0], bool) and isinstance(a.labels[1], float)
    assert a.answer == "6" and a.id == "7" and a.outcome is True
    assert b.steps == ["one", "two\nstill two", "three"] and b.labels == [None, False, None]
    assert b.sources == [None, "proposed", None]  # the shorthand applies to labelled steps only
    assert c.labels == [None] and not c.labelled
    out = tmp_path / "out.jsonl"
    assert save_step_records(out, records) == 3
    again = load_step_records(out)
    assert [r.to_dict() for r in again] == [r.to_dict() for r in records]


@pytest.mark.parametrize("row, field, words", [
    ({"prompt": "q", "steps": ["a", "b"], "labels": [True], "source": "human"}, "labels", "1 labels for 2 steps"),
    ({"prompt": "q", "steps": ["a", "b"], "labels": [True, 1.5], "source": "human"}, "labels[1]", "soft value"),
    ({"prompt": "q", "steps": ["a", "b"], "labels": [True, "yes"], "source": "human"}, "labels[1]", "string"),
    ({"prompt": "q", "steps": ["a"], "labels": [True]}, "sources", "need a source"),
    ({"prompt": "q", "steps": ["a"], "labels": [True], "sources": ["oracle"]}, "sources[0]", "one of human"),
    ({"prompt": "q", "steps": ["a"], "labels": [True], "source": "oracle"}, "source", "one of human"),
    ({"prompt": "q", "steps": ["a", " "]}, "steps[1]", "non-empty"),
    ({"prompt": "q", "steps": []}, "steps", "must not be empty"),
    ({"prompt": "q"}, "steps", "missing"),
    ({"prompt": "q", "steps": ["a"], "outcome": "yes"}, "outcome", "true or false"),
    ({"prompt": "q", "steps": ["a"], "step": ["a"]}, "step", "did you mean 'steps'"),
    ({"steps": ["a"]}, "prompt", "missing"),
])
def test_malformed_records_name_file_line_and_field(tmp_path, row, field, words):
    path = _write(tmp_path, [{"prompt": "fine", "steps": ["x"]}, row])
    with pytest.raises(InputError) as info:
        load_step_records(path)
    err = info.value
    assert (err.path, err.line, err.field) == (str(path), 2, field)
    assert words in str(err) and "\n" not in str(err)
    assert str(err).startswith(f"{path}:2: field '{field}'")


def test_answers_and_numeric_match():
    assert extract_answer("a\nb\n#### 1,200") == "1200"
    assert extract_answer("so $18 each\nA: 18") == "18"
    assert extract_answer("3 * 4 = 12 . answer 12 .") == "12"
    assert extract_answer("the answer is 2.50.") == "2.5"
    assert extract_answer("no final answer 12 apples") == "12" and extract_answer("nothing here") is None
    assert numeric_match("$18.00", "18") and numeric_match("1,000", "1000")
    assert not numeric_match("17", "18") and not numeric_match(None, "18") and not numeric_match("x", "x")


def test_gsm8k_adapters_on_inline_rows():
    ref = [(1, {"question": "q?", "answer": "He has 2+3=<<2+3=5>>5 apples\nSo 5*2=<<5*2=10>>10\n#### 10"})]
    (r,) = gsm8k_reference_records(ref, path="test.jsonl")
    assert r.steps == ["He has 2+3=5 apples", "So 5*2=10", "#### 10"] and r.labels == [True] * 3
    assert r.sources == ["human"] * 3 and r.reference == "10" and r.outcome is True
    with pytest.raises(InputError, match="test.jsonl:1: field 'answer': has no final"):
        list(gsm8k_reference_records([(1, {"question": "q", "answer": "no marker"})], path="test.jsonl"))
    solution = {"is_correct": "False", "solution": "x = 4\nA: 4"}
    row = {"question": "q", "ground_truth": "y\nA: 5", **{k: solution for k in
           ("6b_finetuning", "6b_verification", "175b_finetuning")},
           "175b_verification": {"is_correct": "True", "solution": "x = 5\nA: 5"}}
    out = list(gsm8k_solution_records([(3, row)], path="s.jsonl"))
    assert [r.outcome for r in out] == [False, False, False, True] and out[3].answer == "5"
    assert out[0].reference == "5" and out[0].meta == {"question_id": 3, "solver": "6b_finetuning"}
    assert not out[0].labelled
    bad = dict(row, **{"6b_verification": {"is_correct": "maybe", "solution": "x"}})
    with pytest.raises(InputError, match="s.jsonl:3: field '6b_verification.is_correct'"):
        list(gsm8k_solution_records([(3, bad)], path="s.jsonl"))


@pytest.mark.skipif(not GSM8K.is_dir(), reason="real GSM8K data (../shared/data/gsm8k) is not on this machine")
def test_real_gsm8k_files():
    solutions = load_gsm8k(GSM8K / "example_model_solutions.first660.jsonl")
    assert len(solutions) == 4 * 660
    with_answer = [r for r in solutions if r.answer is not None]
    # The file's is_correct flag is a final-answer check: our numeric match agrees with it.
    agree = sum(numeric_match(r.answer, r.reference) == r.outcome for r in with_answer)
    assert agree / len(with_answer) > 0.99
    reference = load_gsm8k(GSM8K / "test.jsonl")
    assert len(reference) == 1319 and all(r.steps[-1].startswith("####") for r in reference)
    assert all("<<" not in s for r in reference for s in r.steps)


def test_lab_chains_carry_gold_step_labels():
    from rewardgauge.lab.steps import answer_is_right, lab_step_record, sample_step_records

    lucky = lab_step_record("compute 7 + 5 * 3 .", "5 * 3 = 16 . 7 + 15 = 22 . answer 22 .")
    assert lucky.labels == [False, True, True] and lucky.outcome is True and lucky.answer == "22"
    assert first_error(lucky.labels) == 0
    slip = lab_step_record("compute 7 + 5 * 3 .", "certainly ! 5 * 3 = 15 . 7 + 15 = 23 . answer 23 .")
    assert slip.steps[0] == "certainly ! 5 * 3 = 15 ." and slip.labels == [True, False, False]
    assert slip.outcome is False and slip.reference == "22"
    assert answer_is_right("compute 2 + 2 .", "answer 4 .") and not answer_is_right("compute 2 + 2 .", "4 .")
    records = sample_step_records(50, seed=3)
    assert records == sample_step_records(50, seed=3)
    assert {r.outcome for r in records} == {True, False}
    assert any(r.outcome and first_error(r.labels) >= 0 for r in records)  # right answer, wrong step
    assert all(isinstance(r, StepRecord) and len(r.labels) == len(r.steps) for r in records)
