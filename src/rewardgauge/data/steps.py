"""Step-labelled solutions for process reward models (PRMs): plain records, JSONL IO, adapters, answers.

A ``StepRecord`` is one solution to one prompt, cut into steps, with a label per step and where each label
came from. Labels:
- ``True`` / ``False``: the step is correct / incorrect (a hard label);
- a number in [0, 1]: a soft value, e.g. the fraction of Monte Carlo rollouts from the step that reach the
  right answer (Wang et al. 2024, Math-Shepherd);
- ``None``: unlabelled.
Sources (``LabelSource``): ``human`` (written by a person, or the lab's gold, which stands in for one),
``proposed`` (pre-labelled by a model, not yet checked), ``verified`` (a proposal a person accepted or
flipped), ``rollout`` (a Monte Carlo estimate), ``consensus`` (a rollout estimate a judge agreed with).

JSONL, one object per line::

    {"prompt": "...", "steps": ["...", "..."], "labels": [true, 0.25], "sources": ["human", "rollout"],
     "answer": "22", "reference": "22", "outcome": false, "id": "...", "meta": {...}}

``steps`` may instead be given as ``"solution": "<text>"``, cut by the step separator (see ``split_steps``).
``source`` (one string) may replace ``sources`` when every labelled step has the same source. ``answer`` is
the solution's final answer, ``reference`` the right one where known, ``outcome`` whether the final answer is
right (an outcome label, for outcome reward models). No torch here.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from rewardgauge.data.io import iter_rows
from rewardgauge.data.records import Prompt
from rewardgauge.data.validate import RecordChecker, is_finite_number, json_type, show
from rewardgauge.errors import InputError
from rewardgauge.io import write_jsonl_atomic

LabelSource = Literal["human", "proposed", "verified", "rollout", "consensus"]
LABEL_SOURCES: tuple[str, ...] = get_args(LabelSource)
StepLabel = bool | float | None
# How a process reward model turns its step scores (P(step correct)) into one reward per solution.
StepAggregation = Literal["min", "product", "last", "mean"]
STEP_AGGREGATIONS: tuple[str, ...] = get_args(StepAggregation)

DEFAULT_SEPARATOR = "\n"
# The lab's steps are its sentences: "2 * 3 = 6 . 4 + 6 = 10 . answer 10 ."
LAB_SEPARATOR = " . "


# --- steps <-> text ----------------------------------------------------------------------------------------

def _separator_parts(separator: str) -> tuple[str, str]:
    """(what stays at the end of the step the separator closes, the whitespace that joins two steps)."""
    if not separator:
        raise ValueError("the step separator must not be empty")
    joiner = separator[len(separator.rstrip()):]
    return separator[:len(separator) - len(joiner)], joiner


def unescape_separator(separator: str) -> str:
    """A separator typed on a command line: ``\\n`` and ``\\t`` become a newline and a tab."""
    return separator.replace("\\n", "\n").replace("\\t", "\t")


def split_steps(text: str, separator: str = DEFAULT_SEPARATOR) -> list[str]:
    """Cut a solution into steps at each ``separator``; blank steps are dropped.

    The separator's trailing whitespace joins two steps and is dropped; whatever comes before it stays at
    the end of the step it closes. ``"\\n"`` gives one step per line; ``" . "`` cuts the lab's sentences
    and keeps each one's period: ``"2 * 3 = 6 . answer 6 ."`` -> ``["2 * 3 = 6 .", "answer 6 ."]``.
    """
    keep, _ = _separator_parts(separator)
    pieces = text.split(separator)
    steps = [p + keep for p in pieces[:-1]] + pieces[-1:]
    return [s.strip() for s in steps if s.strip() and s.strip() != keep.strip()]


def join_steps(steps: Iterable[str], separator: str = DEFAULT_SEPARATOR) -> str:
    """The solution text of ``steps``, the inverse of ``split_steps`` for steps it produced."""
    keep, joiner = _separator_parts(separator)
    steps = list(steps)
    out = []
    for i, step in enumerate(steps):
        out.append(step)
        if i < len(steps) - 1:
            out.append(joiner if keep and step.endswith(keep.strip()) else separator)
    return "".join(out)


def step_spans(steps: list[str], separator: str = DEFAULT_SEPARATOR) -> tuple[str, list[int]]:
    """``join_steps(steps)`` and the character offset where each step ends in it (for step boundaries)."""
    text, ends = "", []
    keep, joiner = _separator_parts(separator)
    for i, step in enumerate(steps):
        text += step
        ends.append(len(text))
        if i < len(steps) - 1:
            text += joiner if keep and step.endswith(keep.strip()) else separator
    return text, ends


# --- labels ------------------------------------------------------------------------------------------------

def is_correct(label: StepLabel, threshold: float = 0.5) -> bool | None:
    """A label as correct / incorrect: soft values at or above ``threshold`` count as correct."""
    if label is None:
        return None
    if isinstance(label, bool):
        return label
    return label >= threshold


def first_error(labels: Iterable[StepLabel], threshold: float = 0.5) -> int | None:
    """Index of the first incorrect step; -1 when every step is labelled correct; None when an unlabelled
    step comes before any error (the earliest error is then unknown). ProcessBench's target."""
    for i, label in enumerate(labels):
        verdict = is_correct(label, threshold)
        if verdict is None:
            return None
        if not verdict:
            return i
    return -1


@dataclass
class StepRecord:
    """One solution to ``prompt``, as ``steps``, with a label and its source per step (see module docstring)."""

    prompt: Prompt
    steps: list[str]
    labels: list[StepLabel] = field(default_factory=list)
    sources: list[str | None] = field(default_factory=list)
    answer: str | None = None
    reference: str | None = None
    outcome: bool | None = None
    id: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.labels:
            self.labels = [None] * len(self.steps)
        if not self.sources:
            self.sources = [None] * len(self.steps)

    def solution(self, separator: str = DEFAULT_SEPARATOR) -> str:
        return join_steps(self.steps, separator)

    @property
    def labelled(self) -> bool:
        return any(label is not None for label in self.labels)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, without unset fields."""
        out: dict[str, Any] = {"prompt": self.prompt, "steps": list(self.steps)}
        if self.labelled:
            out["labels"] = list(self.labels)
            out["sources"] = list(self.sources)
        for name in ("answer", "reference", "outcome"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.id:
            out["id"] = self.id
        if self.meta:
            out["meta"] = self.meta
        return out


STEP_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(StepRecord)) + ("solution", "source")


def step_record_from_dict(obj: Mapping[str, Any], *, path: Any = None, line: int | None = None,
                          separator: str = DEFAULT_SEPARATOR) -> StepRecord:
    """A validated ``StepRecord``; the first problem raises ``InputError`` naming file, line and field."""
    check = RecordChecker(path, line, None)
    check.unknown_keys(obj, STEP_RECORD_FIELDS)
    prompt = check.prompt(obj)
    steps = _read_steps(check, obj, separator)
    labels = _read_labels(check, obj, len(steps))
    sources = _read_sources(check, obj, labels)
    outcome = obj.get("outcome")
    if outcome is not None and not isinstance(outcome, bool):
        raise check.fail("outcome", f"must be true or false, got {json_type(outcome)} {show(outcome)}")
    answer, reference = (_read_answer(check, obj, name) for name in ("answer", "reference"))
    return StepRecord(prompt=prompt, steps=steps, labels=labels, sources=sources, answer=answer,
                      reference=reference, outcome=outcome, id=check.ident(obj), meta=check.meta(obj))


def _read_steps(check: RecordChecker, obj: Mapping, separator: str) -> list[str]:
    if "steps" in obj and "solution" in obj:
        raise check.fail("solution", "give either 'steps' (a list) or 'solution' (text), not both")
    if obj.get("solution") is not None:
        steps = split_steps(check.text(obj, "solution", required=True), separator)
        if not steps:
            raise check.fail("solution", "has no steps")
        return steps
    value = obj.get("steps")
    if value is None:
        raise check.fail("steps", "missing required field ('steps', or 'solution' as text)")
    if not isinstance(value, (list, tuple)):
        raise check.fail("steps", f"must be a list of step texts, got {json_type(value)} {show(value)}")
    if not value:
        raise check.fail("steps", "must not be empty")
    for i, step in enumerate(value):
        if not isinstance(step, str) or not step.strip():
            raise check.fail(f"steps[{i}]", f"must be a non-empty string, got {show(step)}")
    return list(value)


def _read_labels(check: RecordChecker, obj: Mapping, n_steps: int) -> list[StepLabel]:
    value = obj.get("labels")
    if value is None:
        return [None] * n_steps
    if not isinstance(value, (list, tuple)):
        raise check.fail("labels", f"must be a list with one label per step, got {json_type(value)} {show(value)}")
    if len(value) != n_steps:
        raise check.fail("labels", f"has {len(value)} labels for {n_steps} steps (one per step; null = unlabelled)")
    labels: list[StepLabel] = []
    for i, label in enumerate(value):
        if label is None or isinstance(label, bool):
            labels.append(label)
        elif is_finite_number(label) and 0.0 <= label <= 1.0:
            labels.append(float(label))
        else:
            raise check.fail(f"labels[{i}]", "must be true, false, a soft value in [0, 1] or null, "
                                             f"got {json_type(label)} {show(label)}")
    return labels


def _read_sources(check: RecordChecker, obj: Mapping, labels: list[StepLabel]) -> list[str | None]:
    if "sources" in obj and "source" in obj:
        raise check.fail("source", "give either 'sources' (one per step) or 'source' (for all), not both")
    allowed = ", ".join(LABEL_SOURCES)
    if obj.get("source") is not None:
        source = obj["source"]
        if source not in LABEL_SOURCES:
            raise check.fail("source", f"must be one of {allowed}, got {show(source)}")
        return [None if label is None else source for label in labels]
    value = obj.get("sources")
    if value is None:
        if any(label is not None for label in labels):
            raise check.fail("sources", "labelled steps need a source: 'sources' (one per step) or 'source'")
        return [None] * len(labels)
    if not isinstance(value, (list, tuple)) or len(value) != len(labels):
        raise check.fail("sources", f"must be a list with one source per step ({len(labels)}), got {show(value)}")
    for i, (source, label) in enumerate(zip(value, labels)):
        if source is None and label is not None:
            raise check.fail(f"sources[{i}]", "a labelled step needs a source")
        if source is not None and source not in LABEL_SOURCES:
            raise check.fail(f"sources[{i}]", f"must be one of {allowed} or null, got {show(source)}")
    return [None if label is None else source for source, label in zip(value, labels)]


def _read_answer(check: RecordChecker, obj: Mapping, name: str) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if is_finite_number(value):
        return format_number(float(value))
    if not isinstance(value, str):
        raise check.fail(name, f"must be a string or a number, got {json_type(value)} {show(value)}")
    return value


def load_step_records(path: str | Path, separator: str = DEFAULT_SEPARATOR, *,
                      split: str | None = None) -> list[StepRecord]:
    """Validated ``StepRecord``s from a JSONL file (or a local ``datasets`` source)."""
    return [step_record_from_dict(row, path=path, line=line, separator=separator)
            for line, row in iter_rows(path, split=split)]


def save_step_records(path: str | Path, records: Iterable[StepRecord]) -> int:
    """Write records as JSONL, atomically. Returns the count."""
    return write_jsonl_atomic(Path(path), (r.to_dict() for r in records))


# --- final answers -----------------------------------------------------------------------------------------

_NUMBER = r"-?\$?\d[\d,]*(?:\.\d+)?"
_ANSWER_MARKERS = (
    re.compile(rf"####\s*({_NUMBER})"),                        # GSM8K reference solutions
    re.compile(rf"(?:^|\n)\s*A:\s*({_NUMBER})"),               # GSM8K model solutions ("A: 18")
    re.compile(rf"\banswer(?: is)?:?\s*({_NUMBER})", re.I),     # the lab ("answer 22 .") and prose
    re.compile(rf"\\boxed\{{\s*({_NUMBER})\s*\}}"),             # MATH-style
)


def parse_number(text: str) -> float | None:
    """``"$1,200.50"`` -> 1200.5; None when ``text`` is not a number."""
    cleaned = text.strip().replace(",", "").replace("$", "").rstrip(".")
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def extract_answer(text: str) -> str | None:
    """The final numeric answer of a solution: after an answer marker (``#### N``, ``A: N``, ``answer N``,
    ``\\boxed{N}``; the last one wins), else None. Returned normalised (``"1,200.0"`` -> ``"1200"``)."""
    for pattern in _ANSWER_MARKERS:
        found = pattern.findall(text)
        if found:
            value = parse_number(found[-1])
            return None if value is None else format_number(value)
    return None


def numeric_match(answer: str | None, reference: str | None, tolerance: float = 1e-6) -> bool:
    """Whether two answers are the same number (``"18"``, ``"$18.00"``); False when either is not a number."""
    if answer is None or reference is None:
        return False
    a, b = parse_number(answer), parse_number(reference)
    return a is not None and b is not None and abs(a - b) <= tolerance * max(1.0, abs(b))


# --- GSM8K-style solutions (one step per line) -------------------------------------------------------------

_CALCULATOR = re.compile(r"<<[^<>]*>>")


def strip_calculator(text: str) -> str:
    """GSM8K's calculator annotations out: ``"16 - 3 = <<16-3=13>>13"`` -> ``"16 - 3 = 13"``."""
    return _CALCULATOR.sub("", text)


def _gsm8k_steps(solution: str, keep_calculator: bool) -> list[str]:
    text = solution if keep_calculator else strip_calculator(solution)
    return split_steps(text.replace("\r\n", "\n"), "\n")


def gsm8k_reference_records(rows: Iterable[tuple[int, Mapping[str, Any]]], *, path: Any = None,
                            keep_calculator: bool = False) -> Iterator[StepRecord]:
    """GSM8K ``{"question", "answer"}`` rows (the human reference solutions, final line ``#### N``): one
    record each, every step labelled correct (source ``human``: the dataset's own worked solutions)."""
    for line, row in rows:
        check = RecordChecker(path, line, None)
        question = check.text(row, "question", required=True)
        solution = check.text(row, "answer", required=True)
        reference = extract_answer(solution)
        if reference is None:
            raise check.fail("answer", "has no final '#### N' line")
        steps = _gsm8k_steps(solution, keep_calculator)
        yield StepRecord(prompt=question, steps=steps, labels=[True] * len(steps), sources=["human"] * len(steps),
                         answer=reference, reference=reference, outcome=True, id=f"gsm8k-{line}")


GSM8K_SOLUTION_KEYS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")


def gsm8k_solution_records(rows: Iterable[tuple[int, Mapping[str, Any]]], *, path: Any = None,
                           keep_calculator: bool = False) -> Iterator[StepRecord]:
    """``example_model_solutions.jsonl`` rows (``question``, ``ground_truth`` and four model solutions with an
    ``is_correct`` flag on the final answer): one record per solution, steps unlabelled, ``outcome`` from
    ``is_correct``; ``meta`` names the question (``question_id``) and the model that wrote it (``solver``)."""
    for line, row in rows:
        check = RecordChecker(path, line, None)
        question = check.text(row, "question", required=True)
        truth = check.text(row, "ground_truth", required=True)
        reference = extract_answer(truth)
        for key in GSM8K_SOLUTION_KEYS:
            item = row.get(key)
            if not isinstance(item, Mapping):
                raise check.fail(key, f"must be an object {{solution, is_correct}}, got {json_type(item)}")
            solution = check.text(item, "solution", required=True, field=f"{key}.solution")
            flag = item.get("is_correct")
            if isinstance(flag, str) and flag in ("True", "False"):
                flag = flag == "True"
            if not isinstance(flag, bool):
                raise check.fail(f"{key}.is_correct", f"must be true or false, got {show(flag)}")
            steps = _gsm8k_steps(solution, keep_calculator)
            if not steps:
                raise check.fail(f"{key}.solution", "has no steps")
            yield StepRecord(prompt=question, steps=steps, answer=extract_answer(solution), reference=reference,
                             outcome=flag, id=f"q{line}-{key}", meta={"question_id": line, "solver": key})


def load_gsm8k(path: str | Path, *, keep_calculator: bool = False) -> list[StepRecord]:
    """GSM8K reference solutions (``test.jsonl``) or model solutions (``example_model_solutions*.jsonl``),
    told apart by their fields."""
    rows = list(iter_rows(path))
    if not rows:
        raise InputError("no rows", path=path)
    if "ground_truth" in rows[0][1]:
        return list(gsm8k_solution_records(rows, path=path, keep_calculator=keep_calculator))
    return list(gsm8k_reference_records(rows, path=path, keep_calculator=keep_calculator))
