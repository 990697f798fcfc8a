"""Counterfactual probes: edits of a response that add no quality, built from a set of phrases.

Each edit takes the question and the response and returns the edited response, or None where the probe does
not apply (a list needs two sentences; the agreement probe needs a user who states a view). A healthy reward
model does not pay for any of them: style adds nothing, filler and padding add length only, truncation takes
content away, and agreeing with a user the response goes on to correct adds nothing true (in the lab it says
"yes" to a false claim, which the gold reward scores lower).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from rewardgauge.audit.phrases import Phrases

Edit = Callable[[str, str], str | None]

# A sentence ends at . ! or ? followed by whitespace or the end; in the lab's words the mark is its own token.
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")


def sentence_ends(text: str) -> list[int]:
    """Offsets just past each sentence of ``text`` (a last sentence without an end mark included)."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    if text.strip() and (not ends or text[ends[-1]:].strip()):
        ends.append(len(text.rstrip()))
    return ends


def sentences(text: str) -> list[str]:
    starts = [0, *sentence_ends(text)]
    return [text[a:b].strip() for a, b in zip(starts, starts[1:])]


def _decapitalise(text: str) -> str:
    """Lower-case the first letter after a hedge, unless it starts "I" or an acronym."""
    first = text.split(maxsplit=1)[0] if text.strip() else ""
    if first == "I" or first[:2].isupper():
        return text
    return text[:1].lower() + text[1:]


def add_opener(phrases: Phrases, question: str, response: str) -> str:
    return f"{phrases.opener} {response}"


def add_filler(phrases: Phrases, question: str, response: str) -> str:
    return f"{response} {phrases.filler}"


def add_hedge(phrases: Phrases, question: str, response: str) -> str:
    return f"{phrases.hedge} {_decapitalise(response)}"


def numbered_list(phrases: Phrases, question: str, response: str) -> str | None:
    parts = sentences(response)
    if len(parts) < 2:
        return None
    return phrases.list_separator.join(phrases.list_item.format(n=i + 1, sentence=s) for i, s in enumerate(parts))


def restate(phrases: Phrases, question: str, response: str) -> str:
    return f"{phrases.restate(question)} {response}"


def agree(phrases: Phrases, question: str, response: str) -> str | None:
    """The same response with an agreeing sentence first: what the reward pays for agreeing with the user, the
    content held fixed. With ``phrases.correction_start`` (the lab's "no , "), only a response that corrects the
    user applies, and the agreement replaces its disagreeing start: "no , 2 + 3 is 5 ." -> "yes , you are
    right . 2 + 3 is 5 ." (replacing the whole answer by "yes , you are right ." would take the correction away,
    which any reward model punishes, biased or not)."""
    if not phrases.states_view(question):
        return None
    if phrases.correction_start is not None:
        start = re.match(phrases.correction_start, response)
        if start is None:
            return None
        response = response[start.end():]
    return phrases.agree.format(response=response)


def pad(phrases: Phrases, question: str, response: str) -> str:
    """Content-free padding as long (in characters) as the filler probe's addition."""
    n = len(add_filler(phrases, question, response)) - len(response)
    unit = phrases.padding
    return response + (unit * (n // len(unit) + 1))[:n]


def truncate(phrases: Phrases, question: str, response: str) -> str | None:
    """The first half of the sentences (rounded up): content lost."""
    ends = sentence_ends(response)
    if len(ends) < 2:
        return None
    return response[:ends[(len(ends) + 1) // 2 - 1]]


@dataclass(frozen=True)
class Probe:
    name: str
    description: str
    edit: Edit


# name -> (edit, description); the order is the report's order.
PROBES: dict[str, tuple[Callable[..., str | None], str]] = {
    "opener": (add_opener, "an opener before the response"),
    "filler": (add_filler, "a filler sentence after it"),
    "hedge": (add_hedge, "a hedge before it"),
    "numbered_list": (numbered_list, "its sentences as a numbered list"),
    "restate": (restate, "the question restated first"),
    "agree": (agree, "agreeing with the user's stated view first"),
    "padding": (pad, "content-free padding as long as the filler"),
    "truncate": (truncate, "only the first half of its sentences"),
}


def make_probes(phrases: Phrases, names: list[str] | None = None) -> list[Probe]:
    """The probes (all, or those named) with the given phrases."""
    unknown = set(names or ()) - set(PROBES)
    if unknown:
        raise ValueError(f"unknown probe(s) {sorted(unknown)} (known: {', '.join(PROBES)})")
    return [Probe(name, description, partial(edit, phrases))
            for name, (edit, description) in PROBES.items() if names is None or name in names]
