"""The lab's arithmetic chains as step-labelled records, and the lab's answer checker.

A lab solution's steps are its sentences (``LAB_SEPARATOR``): ``"2 * 3 = 6 ." "4 + 6 = 10 ." "answer 10 ."``.
A step is correct when every equation in it is right and the answer it states (if any) is the right one;
style and filler sentences are neither, so a step made only of them is correct. Some chains reach the right
answer through a wrong step (the ``process_error`` responses of ``world.py``): those are what a process
reward model should catch and an outcome reward model cannot.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from rewardgauge.data.steps import LAB_SEPARATOR, StepRecord, split_steps
from rewardgauge.lab.gold import analyse
from rewardgauge.lab.language import LanguageError, arithmetic_steps, parse_prompt
from rewardgauge.lab.world import ContentMix, StyleRates, sample_prompt, sample_response


def reference_answer(prompt: str) -> str:
    """The right final answer of a lab arithmetic prompt."""
    info = parse_prompt(prompt)
    if info.family != "arithmetic":
        raise LanguageError(f"not an arithmetic prompt: '{prompt}'")
    return str(arithmetic_steps(info.expr)[-1][3])


def step_is_correct(prompt: str, step: str) -> bool:
    """Every equation of ``step`` right, its stated answer (if any) right, and nothing outside the language."""
    a = analyse(prompt, step, strict=False)
    return all(a.step_correct) and a.final_correct is not False and a.junk_sentences == 0


def gold_step_labels(prompt: str, steps: Sequence[str]) -> list[bool]:
    return [step_is_correct(prompt, s) for s in steps]


def answer_is_right(prompt: str, response: str) -> bool:
    """The lab's answer checker: the response states the right final answer."""
    return analyse(prompt, response, strict=False).final_correct is True


def lab_step_record(prompt: str, response: str, *, id: str = "", labelled: bool = True) -> StepRecord:
    """A lab response as a StepRecord; with ``labelled`` every step carries its gold label (source ``human``:
    the lab's gold stands in for a person). A response without steps (blank, or a lone ".") is a ValueError."""
    steps = split_steps(response, LAB_SEPARATOR)
    if not steps:
        raise ValueError(f"a response without steps: {response!r}")
    a = analyse(prompt, response, strict=False)
    answer = None
    if a.final_correct is not None:
        answer = next((s.split()[1] for s in reversed(steps) if s.split()[:1] == ["answer"]), None)
    labels = gold_step_labels(prompt, steps) if labelled else []
    return StepRecord(prompt=prompt, steps=steps, labels=labels,
                      sources=["human"] * len(steps) if labelled else [], answer=answer,
                      reference=reference_answer(prompt), outcome=a.final_correct is True, id=id)


PLAIN_CHAINS = ContentMix(best=0.5)
NO_STYLE = StyleRates(opener=0.0, restate=0.0, numbered_list=0.0, filler_mean=0.0)


def sample_step_records(n: int, seed: int = 0, content: ContentMix = PLAIN_CHAINS, style: StyleRates = NO_STYLE,
                        prompts: Sequence[str] | None = None) -> list[StepRecord]:
    """``n`` gold-labelled arithmetic solutions drawn from the lab's response generator (by default plain,
    without style, half of them the best chain); ``prompts`` restricts which prompts are used."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        prompt = rng.choice(list(prompts)) if prompts else sample_prompt(rng, "arithmetic")
        records.append(lab_step_record(prompt, sample_response(prompt, rng, content, style), id=f"lab-{seed}-{i}"))
    return records
