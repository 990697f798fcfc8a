"""Style patterns: find a style tic in text a model wrote, and take it out again.

Where the probes (``probes.py``) add an opener, filler, a hedge, a numbered list or a restated question to a
response, a pattern finds each of them in any response and removes it: the monitor counts how often a policy
writes each one and asks what the reward model pays for it, by scoring the response with the pattern removed
(counterfactual removal). The words are the probes' words (``Phrases``, data chosen by the caller); a user adds
patterns of their own as regular expressions (``regex_pattern``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rewardgauge.audit.phrases import Phrases

# Where a hedge may stand: the start of the response, of a sentence, or of a list item ("2 ) it is worth ...").
_AT_START = r"(?:^|(?<=[.!?)\n])\s*)"


@dataclass(frozen=True)
class StylePattern:
    """One style tic.

    spans:     (question, response) -> the (start, end) character spans of each occurrence.
    min_count: occurrences that make the pattern present (a numbered list needs two items).
    """

    name: str
    description: str
    spans: Callable[[str, str], list[tuple[int, int]]]
    min_count: int = 1

    def present(self, question: str, response: str) -> bool:
        return len(self.spans(question, response)) >= self.min_count

    def remove(self, question: str, response: str) -> str:
        """The response without this pattern (where present; else unchanged); spaces left doubled are merged."""
        spans = self.spans(question, response)
        if len(spans) < self.min_count:
            return response
        out, at = [], 0
        for start, end in spans:
            out.append(response[at:start])
            at = end
        out.append(response[at:])
        return re.sub(r"[ \t]{2,}", " ", " ".join(part.strip(" \t") for part in out if part.strip(" \t"))).strip()


def _alternatives(phrases: Sequence[str]) -> str:
    """A regex alternation of literal phrases, longest first (so that a longer phrase wins over its prefix),
    with any run of whitespace matching any other."""
    parts = sorted({p.strip() for p in phrases if p.strip()}, key=len, reverse=True)
    return "(?:" + "|".join(r"\s+".join(re.escape(w) for w in p.split()) for p in parts) + ")"


def _finder(regex: re.Pattern[str]) -> Callable[[str, str], list[tuple[int, int]]]:
    return lambda question, response: [m.span() for m in regex.finditer(response)]


def regex_pattern(name: str, regex: str, description: str = "", min_count: int = 1) -> StylePattern:
    """A pattern of the user's own: every match of ``regex`` (case-insensitive) is an occurrence."""
    compiled = re.compile(regex, re.IGNORECASE)
    return StylePattern(name, description or f"matches /{regex}/", _finder(compiled), min_count)


def _restated(phrases: Phrases) -> Callable[[str, str], list[tuple[int, int]]]:
    def spans(question: str, response: str) -> list[tuple[int, int]]:
        try:
            sentence = phrases.restate(question)
        except ValueError:  # a restatement the phrases cannot write for this question (not in their language)
            return []
        regex = re.compile(r"\s*" + _alternatives([sentence]) + r"\s*", re.IGNORECASE)
        return [m.span() for m in regex.finditer(response)]
    return spans


def _list_markers(phrases: Phrases) -> re.Pattern[str]:
    """The item markers of ``phrases.list_item`` ("{n} ) {sentence}" -> "1 ) ", "2 ) " ...)."""
    prefix = phrases.list_item.split("{sentence}")[0]
    before, after = prefix.split("{n}")
    return re.compile(r"(?:^|(?<=\s))" + re.escape(before) + r"\d+" + re.escape(after.rstrip()) + r"[ \t]*",
                      re.MULTILINE)


def style_patterns(phrases: Phrases, names: Sequence[str] | None = None) -> list[StylePattern]:
    """The style tics of the probes, in the words of ``phrases`` (all, or those named)."""
    flags = re.IGNORECASE
    library = [
        StylePattern("opener", "an opener before the answer",
                     _finder(re.compile(r"^\s*" + _alternatives(phrases.openers) + r"\s*", flags))),
        StylePattern("filler", "a filler sentence (adds length, no content)",
                     _finder(re.compile(r"\s*" + _alternatives(phrases.fillers) + r"\s*", flags))),
        StylePattern("hedge", "a hedge at the start of a sentence",
                     _finder(re.compile(_AT_START + _alternatives(phrases.hedges) + r"\s*", flags))),
        StylePattern("numbered_list", "sentences as a numbered list", _finder(_list_markers(phrases)), min_count=2),
        StylePattern("restate", "the question restated", _restated(phrases)),
    ]
    known = [p.name for p in library]
    unknown = sorted(set(names or ()) - set(known))
    if unknown:
        raise ValueError(f"unknown style pattern(s) {unknown} (known: {', '.join(known)})")
    return [p for p in library if names is None or p.name in names]


def agreement_check(phrases: Phrases) -> Callable[[str, str], bool]:
    """``check(question, response)``: does the response begin by agreeing with the user
    (``phrases.agreement_starts``), once any opener, restatement or hedge before it is taken out?"""
    before = style_patterns(phrases, ["opener", "restate", "hedge"])
    start = re.compile(_alternatives(phrases.agreement_starts) + r"\b", re.IGNORECASE) \
        if phrases.agreement_starts else None

    def check(question: str, response: str) -> bool:
        if start is None:
            return False
        text = response
        for pattern in before:
            text = pattern.remove(question, text)
        return start.match(text.strip()) is not None
    return check
