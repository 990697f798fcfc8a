"""The preference layouts ``load_pairs`` reads, each row turned into our record before it is validated.

Layouts (TRL's names, from its "Dataset formats and types" guide), told apart row by row:
- ``rewardgauge``: ``prompt`` (text or chat messages), ``chosen`` and ``rejected`` texts, and our optional fields
  (``votes``, ``vote_fraction``, ``annotators``, ``aspects``, ``margin``, ``difficulty``, ``id``, ``source``,
  ``meta``). TRL's standard explicit-prompt preference format is this layout with no optional field.
- ``conversational``: ``prompt``, ``chosen`` and ``rejected`` as chat messages: the prompt's messages, then
  one assistant message each (a ``chosen`` that repeats the prompt's messages first, as UltraFeedback's does,
  is read too).
- ``conversational_implicit``: ``chosen`` and ``rejected`` as whole conversations; the messages they share
  from the start are the prompt, and each must end in one assistant message after it.
- ``implicit``: TRL's standard implicit-prompt format, ``chosen`` and ``rejected`` as whole texts; the text
  they share from the start, up to the last whitespace in it, is the prompt and the rest the responses (TRL
  cuts at the first differing character, which can split a word between prompt and response). Texts that are hh-rlhf transcripts (``"\\n\\nAssistant:"`` turns)
  are split at the last shared Assistant turn instead, the prompt as chat messages (as ``data convert
  --format hh-rlhf`` does, except that a transcript pair that does not form a pair is an error here, not a
  skip).
Columns that are none of our fields are kept in ``meta`` under their own names (a key close to a field the row
lacks, such as ``vote`` for ``votes``, is still taken for a typo and refused). With a column mapping, only the
mapped columns are read, as before.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rewardgauge.data.records import PreferencePair
from rewardgauge.data.validate import PAIR_FIELDS, RecordChecker, pair_from_dict, select_columns

LAYOUTS = ("rewardgauge", "conversational", "conversational_implicit", "implicit", "hh-rlhf")


@dataclass
class PairsRead:
    """What reading a preference source found besides the pairs: rows per layout, extra columns kept in meta."""

    layouts: Counter = field(default_factory=Counter)
    extra_columns: Counter = field(default_factory=Counter)  # column -> rows that had it

    def notes(self) -> list[str]:
        """One line per thing worth telling the user once (empty for plain rewardgauge records)."""
        out = []
        if set(self.layouts) - {"rewardgauge"}:
            out.append("layout: " + ", ".join(f"{k} {v}" for k, v in sorted(self.layouts.items())))
        if self.extra_columns:
            out.append("extra columns kept in meta: " + ", ".join(
                f"{k} ({v} row{'' if v == 1 else 's'})" for k, v in sorted(self.extra_columns.items())))
        return out


def _split_extras(row: Mapping[str, Any], check: RecordChecker) -> tuple[dict[str, Any], dict[str, Any]]:
    """(our fields, other columns). Other columns are kept only beside a ``chosen`` and a ``rejected``; an
    unknown key close to a field the row lacks (``vote`` for ``votes``) is a typo and an error."""
    if "chosen" not in row or "rejected" not in row:
        check.unknown_keys(row, PAIR_FIELDS)  # not a preference row in any layout: name the foreign column
    ours, extras = {}, {}
    for key, value in row.items():
        if key in PAIR_FIELDS:
            ours[key] = value
            continue
        close = difflib.get_close_matches(str(key), PAIR_FIELDS, n=1)
        if close and close[0] not in row:
            check.unknown_keys({key: value}, PAIR_FIELDS)
        extras[str(key)] = value
    return ours, extras


def layout_of(row: Mapping[str, Any]) -> str:
    """Which layout a row (our field names) is in; ``rewardgauge`` when nothing else fits (validation then
    names what is wrong)."""
    chosen, rejected = row.get("chosen"), row.get("rejected")
    if isinstance(chosen, (list, tuple)) and isinstance(rejected, (list, tuple)):
        return "conversational" if row.get("prompt") is not None else "conversational_implicit"
    if isinstance(chosen, str) and isinstance(rejected, str) and row.get("prompt") is None:
        from rewardgauge.data.adapters import HH_ASSISTANT

        return "hh-rlhf" if HH_ASSISTANT in chosen and HH_ASSISTANT in rejected else "implicit"
    return "rewardgauge"


def split_shared_text(chosen: str, rejected: str) -> tuple[str, str, str] | None:
    """``(prompt, chosen_response, rejected_response)``: the shared start of both texts, up to the last
    whitespace inside it, is the prompt (so no word is split between prompt and response), the rest of each text
    its response; all stripped. None when they share no whole word."""
    n = 0
    for a, b in zip(chosen, rejected):
        if a != b:
            break
        n += 1
    cut = max(chosen.rfind(c, 0, n) for c in " \t\n")
    prompt = chosen[:max(cut, 0)].rstrip()
    if not prompt.strip():
        return None
    return prompt, chosen[cut:].strip(), rejected[cut:].strip()


def _assistant_reply(check: RecordChecker, messages: list[dict], name: str, start: int) -> str:
    rest = messages[start:]
    if len(rest) != 1 or rest[0].get("role") != "assistant":
        roles = ", ".join(m.get("role", "?") for m in rest)
        where = f" after the {start} prompt message(s) it shares with the other side" if start else ""
        raise check.fail(name, f"expected one assistant message{where}, got {len(rest)}"
                               + (f" ({roles})" if roles else ""))
    return rest[0]["content"]


def _conversational(row: dict, check: RecordChecker, implicit: bool) -> dict:
    chosen = check.messages(row["chosen"], "chosen")
    rejected = check.messages(row["rejected"], "rejected")
    if implicit:
        shared = 0
        for a, b in zip(chosen, rejected):
            if a != b:
                break
            shared += 1
        if shared == 0:
            raise check.fail("prompt", "missing required field ('chosen' and 'rejected' share no leading messages "
                                       "to take it from, as in TRL's implicit-prompt format)")
        prompt = chosen[:shared]
        start = shared
    else:
        prompt = check.prompt(row)
        as_messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        # UltraFeedback-style rows repeat the prompt's messages at the start of each side.
        start = len(as_messages) if chosen[:len(as_messages)] == as_messages == rejected[:len(as_messages)] else 0
    return {**row, "prompt": prompt, "chosen": _assistant_reply(check, chosen, "chosen", start),
            "rejected": _assistant_reply(check, rejected, "rejected", start)}


def _implicit_text(row: dict, check: RecordChecker, hh: bool) -> dict:
    chosen = check.text(row, "chosen", required=True)
    rejected = check.text(row, "rejected", required=True)
    if hh:
        from rewardgauge.data.adapters import _Skip, hh_prompt_messages, split_hh_transcripts

        try:
            prompt_text, resp_c, resp_r = split_hh_transcripts(chosen, rejected)
            prompt: Any = hh_prompt_messages(prompt_text)
        except _Skip as s:
            raise check.fail("chosen", f"these hh-rlhf transcripts do not form a pair ({s.reason}); "
                                       "'data convert --format hh-rlhf' skips such records") from None
    else:
        split = split_shared_text(chosen, rejected)
        if split is None:
            raise check.fail("prompt", "missing required field ('chosen' and 'rejected' share no leading words to "
                                       "take it from, as in TRL's implicit-prompt format)")
        prompt, resp_c, resp_r = split
    return {**row, "prompt": prompt, "chosen": resp_c, "rejected": resp_r}


def pair_from_row(row: Mapping[str, Any], *, path: Any = None, line: int | None = None,
                  columns: Mapping[str, str] | None = None) -> tuple[PreferencePair, str, list[str]]:
    """``(pair, layout, extra columns kept in meta)`` from one row in any layout of the module docstring."""
    check = RecordChecker(path, line, columns)
    if columns:
        fields, extras = select_columns(row, PAIR_FIELDS, columns), {}
    else:
        fields, extras = _split_extras(row, check)
    layout = layout_of(fields)
    if layout == "rewardgauge" and not extras:
        return pair_from_dict(row, path=path, line=line, columns=columns), layout, []
    if layout in ("conversational", "conversational_implicit"):
        fields = _conversational(fields, check, implicit=layout == "conversational_implicit")
    elif layout in ("implicit", "hh-rlhf"):
        fields = _implicit_text(fields, check, hh=layout == "hh-rlhf")
    if extras:
        meta = check.meta(fields)
        fields["meta"] = {**extras, **meta}  # the row's own meta wins over a column of the same name
    return pair_from_dict(fields, path=path, line=line), layout, sorted(extras)
