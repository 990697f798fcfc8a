"""Turn other preference formats into ``PreferencePair`` records.

Each adapter is a pure function over ``(line, row)`` pairs (what ``iter_rows`` yields; use
``enumerate(rows, 1)`` for a plain list) that returns ``(pairs, skipped)``: ``skipped`` counts, by reason,
the records or candidate pairs that gave no pair. A malformed row (a missing or ill-typed field) is not a skip:
it raises ``InputError`` naming the file, line and field, like every loader here.

hh-rlhf (Bai et al. 2022, "Training a Helpful and Harmless Assistant with RLHF"): each record holds two full
transcripts ``"\\n\\nHuman: ...\\n\\nAssistant: ..."`` that share every turn but the last Assistant turn. The
prompt is the longest shared prefix that ends at an ``"\\n\\nAssistant:"`` marker; what follows it in each
transcript is that transcript's response. Records that cannot form a pair are skipped with a reason:
- ``empty_response``: a final Assistant turn is blank (4 of the 1,156 records of
  ``harmless-base.test.part1-of-2.jsonl``, all on the chosen side);
- ``identical_responses``: both final turns are the same text (whitespace, Unicode normalisation and zero-width
  characters aside: ``same_text``);
- ``differ_before_last_turn``: the transcripts part before their last turn, so the "responses" would
  contain further Human turns; there is no single prompt for both;
- ``no_shared_assistant_turn``: the shared prefix holds no ``"\\n\\nAssistant:"`` marker;
- ``empty_prompt``: every turn before the response is blank;
- ``text_before_first_turn``: with chat-message prompts, text before the first ``"\\n\\nHuman:"``.
Responses are stripped of surrounding whitespace. In text form the prompt is kept verbatim, ending with
``"\\n\\nAssistant:"``, so ``prompt + " " + response`` gives back the transcript whenever the final turn is
one space then the response (true of every final turn in that file). In message form each turn's content is
stripped. Text inside a response that merely looks like a turn (``" Human: ..."`` without the blank line) is
the model's output and stays in the response.

Multi-aspect ratings (as in HelpSteer / UltraFeedback): rows ``{"prompt": ..., "responses": [{"text": ...,
"ratings": {"helpfulness": 4, "safety": 5}}, ...], "id"?, "source"?, "meta"?}`` with one or more rated
responses per prompt. ``multi_aspect_pairs`` gives, for each aspect, every pair of responses whose ratings on
that aspect differ (the higher-rated is chosen, ``aspects={aspect: 1.0}``, ``margin`` = the rating gap).
``multi_aspect_overall_pairs`` ranks by a weighted sum of ratings and records the preference on every aspect
(1 chosen better, 0 worse, 0.5 tie).
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

from rewardgauge.data.io import iter_rows
from rewardgauge.data.records import PreferencePair, Prompt
from rewardgauge.data.validate import (
    RecordChecker,
    is_finite_number,
    json_type,
    same_text,
    select_columns,
    show,
)
from rewardgauge.errors import InputError

# How a converted hh-rlhf prompt is stored: a list of chat messages, or the raw text.
PromptFormat = Literal["messages", "text"]
PROMPT_FORMATS: tuple[str, ...] = get_args(PromptFormat)

HH_HUMAN = "\n\nHuman:"
HH_ASSISTANT = "\n\nAssistant:"
_HH_MARKER = re.compile(r"(\n\nHuman:|\n\nAssistant:)")
_HH_ROLES = {HH_HUMAN: "user", HH_ASSISTANT: "assistant"}

NumberedRows = Iterable[tuple[int, Mapping[str, Any]]]


class _Skip(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _common_prefix_length(a: str, b: str) -> int:
    # Binary search on slice equality: log(n) comparisons done in C, not n steps of a Python loop
    # (the full hh-rlhf set is 160k transcripts).
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def split_hh_transcripts(chosen: str, rejected: str) -> tuple[str, str, str]:
    """``(prompt_text, chosen_response, rejected_response)`` from two hh-rlhf transcripts.

    ``prompt_text`` is verbatim and ends with ``"\\n\\nAssistant:"``; the responses are stripped. Raises
    ``_Skip(reason)`` when the two do not form a pair (see the module docstring for the reasons).
    """
    shared = _common_prefix_length(chosen, rejected)
    cut = chosen.rfind(HH_ASSISTANT, 0, shared)  # the last marker lying wholly inside the shared prefix
    if cut < 0:
        raise _Skip("no_shared_assistant_turn")
    end = cut + len(HH_ASSISTANT)
    if not _HH_MARKER.sub("", chosen[:end]).strip():
        raise _Skip("empty_prompt")
    tail_c, tail_r = chosen[end:], rejected[end:]
    if any(m in tail for tail in (tail_c, tail_r) for m in (HH_HUMAN, HH_ASSISTANT)):
        raise _Skip("differ_before_last_turn")
    resp_c, resp_r = tail_c.strip(), tail_r.strip()
    if not resp_c or not resp_r:
        raise _Skip("empty_response")
    if same_text(resp_c, resp_r):
        raise _Skip("identical_responses")
    return chosen[:end], resp_c, resp_r


def hh_prompt_messages(prompt: str) -> list[dict[str, str]]:
    """Chat messages from an hh-rlhf prompt (which ends with the empty ``"\\n\\nAssistant:"`` cue)."""
    parts = _HH_MARKER.split(prompt)
    if parts[0].strip():
        raise _Skip("text_before_first_turn")
    messages = [{"role": _HH_ROLES[marker], "content": content.strip()}
                for marker, content in zip(parts[1::2], parts[2::2])]
    # The final Assistant marker is the cue for the response, not a turn.
    if messages and messages[-1]["role"] == "assistant" and not messages[-1]["content"]:
        messages.pop()
    return messages


def hh_rlhf_pairs(rows: NumberedRows, *, path: Any = None, prompt_format: PromptFormat = "messages",
                  source: str = "hh-rlhf", id_prefix: str = "hh-rlhf:",
                  columns: Mapping[str, str] | None = None) -> tuple[list[PreferencePair], Counter]:
    """PreferencePairs from hh-rlhf rows ``{"chosen": transcript, "rejected": transcript}``.

    ``prompt_format``: ``"messages"`` (list of ``{"role": "user"|"assistant", "content"}``) or ``"text"``
    (the verbatim transcript prefix). ids are ``id_prefix + line``. ``columns`` maps ``chosen`` /
    ``rejected`` to other column names. Other columns are ignored.
    """
    if prompt_format not in PROMPT_FORMATS:
        raise InputError(f"must be one of {list(PROMPT_FORMATS)}, got {prompt_format!r}", field="prompt_format")
    pairs: list[PreferencePair] = []
    skipped: Counter = Counter()
    for line, row in rows:
        check = RecordChecker(path, line, columns)
        row = select_columns(row, ("chosen", "rejected"), columns or {})
        check.check_values(row)
        chosen = check.text(row, "chosen", required=True)
        rejected = check.text(row, "rejected", required=True)
        try:
            prompt_str, resp_c, resp_r = split_hh_transcripts(chosen, rejected)
            prompt: Prompt = hh_prompt_messages(prompt_str) if prompt_format == "messages" else prompt_str
        except _Skip as s:
            skipped[s.reason] += 1
            continue
        pairs.append(PreferencePair(prompt=prompt, chosen=resp_c, rejected=resp_r, id=f"{id_prefix}{line}",
                                    source=source))
    return pairs, skipped


_MULTI_ASPECT_FIELDS = ("prompt", "responses", "id", "source", "meta")


def _rated_responses(row: Mapping[str, Any], check: RecordChecker) -> list[tuple[str, dict[str, float]]]:
    responses = row.get("responses")
    if responses is None:
        raise check.fail("responses", "missing required field")
    if not isinstance(responses, (list, tuple)):
        raise check.fail("responses", 'must be a list of {"text", "ratings"} objects, '
                                      f"got {json_type(responses)} {show(responses)}")
    out = []
    for i, resp in enumerate(responses):
        where = f"responses[{i}]"
        if not isinstance(resp, Mapping):
            raise check.fail(where, f'must be a {{"text", "ratings"}} object, got {json_type(resp)} {show(resp)}')
        text = check.text(resp, "text", required=True, field=f"{where}.text")
        ratings = resp.get("ratings")
        if not isinstance(ratings, Mapping):
            what = "missing required field" if ratings is None else \
                f"must be an object {{aspect: number}}, got {json_type(ratings)} {show(ratings)}"
            raise check.fail(f"{where}.ratings", what)
        for aspect, value in ratings.items():
            # datasets fills an aspect absent from this response with null: it is simply not rated.
            if value is not None and not is_finite_number(value):
                raise check.fail(f"{where}.ratings.{aspect}", f"must be a number, got {show(value)}")
        out.append((text, {str(a): float(v) for a, v in ratings.items() if v is not None}))
    return out


def _check_gap(check: RecordChecker, gap: float, i: int, j: int) -> None:
    """A pair's margin must be a finite number (JSON has no Infinity): ratings near 1e308 overflow."""
    if not math.isfinite(gap):
        raise check.fail("responses", f"the rating gap between responses {i} and {j} overflows to {gap}; "
                                      "ratings (and weights) must be ordinary numbers")


def _multi_aspect_rows(rows: NumberedRows, path: Any, columns: Mapping[str, str] | None, id_prefix: str):
    """Validated ``(check, row_id, prompt, responses, source, meta)`` per row (``check`` names the row in errors)."""
    for line, raw in rows:
        check = RecordChecker(path, line, columns)
        if columns is None:
            check.unknown_keys(raw, _MULTI_ASPECT_FIELDS)
            row = raw
        else:
            row = select_columns(raw, _MULTI_ASPECT_FIELDS, columns)
        check.check_values(row)
        prompt = check.prompt(row)
        responses = _rated_responses(row, check)
        row_id = check.ident(row) or f"{id_prefix}{line}"
        yield check, row_id, prompt, responses, check.text(row, "source", required=False), check.meta(row)


def multi_aspect_pairs(rows: NumberedRows, *, path: Any = None, aspects: Sequence[str] | None = None,
                       source: str = "multi-aspect", id_prefix: str = "multi-aspect:",
                       columns: Mapping[str, str] | None = None) -> tuple[list[PreferencePair], Counter]:
    """For each aspect, one pair per two responses rated differently on it; the higher-rated is chosen.

    A pair gets ``aspects={aspect: 1.0}``, ``margin`` = rating gap, ``meta`` = the aspect, both responses'
    full ratings and their indices. ``aspects`` limits the aspects used (default: every rated aspect, sorted).
    ``skipped`` counts candidate pairs: ``tie`` (equal ratings) and ``identical_responses``. ids are
    ``{row id}:{aspect}:{chosen index}>{rejected index}``.
    """
    pairs: list[PreferencePair] = []
    skipped: Counter = Counter()
    for check, row_id, prompt, responses, row_source, meta in _multi_aspect_rows(rows, path, columns, id_prefix):
        names = aspects if aspects is not None else sorted({a for _, r in responses for a in r})
        for aspect in names:
            rated = [(i, text, r) for i, (text, r) in enumerate(responses) if aspect in r]
            for x in range(len(rated)):
                for y in range(x + 1, len(rated)):
                    (i, ti, ri), (j, tj, rj) = rated[x], rated[y]
                    if ri[aspect] == rj[aspect]:
                        skipped["tie"] += 1
                        continue
                    if same_text(ti, tj):
                        skipped["identical_responses"] += 1
                        continue
                    if ri[aspect] < rj[aspect]:
                        (i, ti, ri), (j, tj, rj) = (j, tj, rj), (i, ti, ri)
                    _check_gap(check, ri[aspect] - rj[aspect], i, j)
                    pairs.append(PreferencePair(
                        prompt=prompt, chosen=ti, rejected=tj, id=f"{row_id}:{aspect}:{i}>{j}",
                        aspects={aspect: 1.0}, margin=ri[aspect] - rj[aspect], source=row_source or source,
                        meta={**meta, "aspect": aspect, "chosen_index": i, "rejected_index": j,
                              "chosen_ratings": ri, "rejected_ratings": rj}))
    return pairs, skipped


def _check_weights(weights: Mapping[str, float]) -> dict[str, float]:
    for name, w in weights.items():
        if not is_finite_number(w):
            raise InputError(f"weight of aspect '{name}' must be a number, got {show(w)}", field="weights")
    if not any(w != 0 for w in weights.values()):
        raise InputError("needs at least one non-zero weight", field="weights")
    return {str(k): float(v) for k, v in weights.items()}


def multi_aspect_overall_pairs(rows: NumberedRows, *, path: Any = None, weights: Mapping[str, float] | None = None,
                               source: str = "multi-aspect", id_prefix: str = "multi-aspect:",
                               columns: Mapping[str, str] | None = None) -> tuple[list[PreferencePair], Counter]:
    """One pair per two responses, ranked by the overall score ``s = sum_a w_a * rating_a``.

    ``weights`` default to 1 for every aspect rated in the row. A pair of responses that lacks a rating on a
    weighted aspect is skipped (``missing_rating``), equal scores are ``tie``, equal texts
    ``identical_responses``. Each pair records ``margin`` = the score gap and ``aspects`` = the preference
    for chosen on every aspect both are rated on (1 better, 0 worse, 0.5 equal); ``meta`` holds the ratings
    and the weights. ids are ``{row id}:overall:{chosen index}>{rejected index}``.
    """
    fixed = None if weights is None else _check_weights(weights)
    pairs: list[PreferencePair] = []
    skipped: Counter = Counter()
    for check, row_id, prompt, responses, row_source, meta in _multi_aspect_rows(rows, path, columns, id_prefix):
        w = fixed if fixed is not None else {a: 1.0 for a in sorted({a for _, r in responses for a in r})}
        for i in range(len(responses)):
            for j in range(i + 1, len(responses)):
                (ti, ri), (tj, rj) = responses[i], responses[j]
                if any(a not in ri or a not in rj for a, wa in w.items() if wa != 0):
                    skipped["missing_rating"] += 1
                    continue
                gap = sum(wa * (ri[a] - rj[a]) for a, wa in w.items() if wa != 0)
                _check_gap(check, gap, i, j)
                if gap == 0:
                    skipped["tie"] += 1
                    continue
                if same_text(ti, tj):
                    skipped["identical_responses"] += 1
                    continue
                c, r = (i, j) if gap > 0 else (j, i)
                (tc, rc), (tr, rr) = responses[c], responses[r]
                prefs = {a: 1.0 if rc[a] > rr[a] else 0.0 if rc[a] < rr[a] else 0.5
                         for a in sorted(rc) if a in rr}
                pairs.append(PreferencePair(
                    prompt=prompt, chosen=tc, rejected=tr, id=f"{row_id}:overall:{c}>{r}", aspects=prefs,
                    margin=abs(gap), source=row_source or source,
                    meta={**meta, "chosen_index": c, "rejected_index": r, "chosen_ratings": rc,
                          "rejected_ratings": rr, "weights": w}))
    return pairs, skipped


def load_hh_rlhf(path: str | os.PathLike, *, prompt_format: PromptFormat = "messages",
                 columns: Mapping[str, str] | None = None,
                 split: str | None = None) -> tuple[list[PreferencePair], Counter]:
    """``hh_rlhf_pairs`` over a local file or ``datasets`` source; ids are ``{file stem}:{line}``."""
    stem = Path(path).stem if Path(path).is_file() else Path(path).name
    return hh_rlhf_pairs(iter_rows(path, split=split), path=path, prompt_format=prompt_format,
                         id_prefix=f"{stem}:", columns=columns)


def load_multi_aspect(path: str | os.PathLike, *, overall: bool = False,
                      weights: Mapping[str, float] | None = None, aspects: Sequence[str] | None = None,
                      columns: Mapping[str, str] | None = None,
                      split: str | None = None) -> tuple[list[PreferencePair], Counter]:
    """Per-aspect pairs (or, with ``overall=True``, weighted overall pairs) from a local multi-aspect source."""
    rows = iter_rows(path, split=split)
    if overall:
        if aspects is not None:
            raise InputError("applies to per-aspect pairs only; use weights for overall pairs", field="aspects")
        return multi_aspect_overall_pairs(rows, path=path, weights=weights, columns=columns)
    if weights is not None:
        raise InputError("applies to overall pairs only", field="weights")
    return multi_aspect_pairs(rows, path=path, aspects=aspects, columns=columns)
