"""Plain records for preference data. They keep what majority votes throw away: every vote, per-aspect
judgements, a difficulty. No torch here; these are what files hold, one JSON object per line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

# A prompt is plain text or a list of chat messages [{"role": "user", "content": "..."}, ...].
Prompt = str | list[dict[str, str]]

DIFFICULTIES = ("easy", "medium", "hard")
# What summaries call a pair without a difficulty (the lab: no gold preference; other data: none given).
UNLABELLED = "unlabelled"


def prompt_text(prompt: Prompt) -> str:
    """A readable single-string form of a prompt (for display, grouping and hashing)."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m.get('role', '')}: {m.get('content', '')}" for m in prompt)


@dataclass
class PreferencePair:
    """One comparison: ``chosen`` was preferred to ``rejected`` for ``prompt`` (by majority, or by a gold label).

    votes:         one entry per annotator, 1 = preferred chosen, 0 = preferred rejected.
    vote_fraction: fraction of annotators who preferred chosen, when the individual votes are not kept.
    aspects:       per-aspect preference for chosen in [0, 1] (1 chosen better, 0 rejected better, 0.5 tie);
                   may name only some aspects (e.g. a pair built from one aspect's ratings).
    margin:        strength of the preference (e.g. a rating gap), for the margin BT loss.
    difficulty:    "easy" | "medium" | "hard", or None (evaluation then derives it from vote agreement).
    """

    prompt: Prompt
    chosen: str
    rejected: str
    id: str = ""
    votes: list[int] | None = None
    vote_fraction: float | None = None
    annotators: list[str] | None = None
    aspects: dict[str, float] | None = None
    margin: float | None = None
    difficulty: str | None = None
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def preference(self) -> float:
        """Soft label P(chosen preferred): the vote fraction when known, else 1."""
        if self.votes:
            return sum(self.votes) / len(self.votes)
        if self.vote_fraction is not None:
            return float(self.vote_fraction)
        return 1.0

    @property
    def agreement(self) -> float | None:
        """How one-sided the annotators were, in [0.5, 1]; None without votes."""
        if not self.votes and self.vote_fraction is None:
            return None
        p = self.preference
        return max(p, 1.0 - p)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict without the fields that are unset, so files stay small and readable."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None or (f.name in ("meta", "source", "id") and not value):
                continue
            out[f.name] = value
        return out


@dataclass
class Demonstration:
    """One supervised example for SFT: a prompt and the response to imitate."""

    prompt: Prompt
    response: str
    id: str = ""
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"prompt": self.prompt, "response": self.response}
        if self.id:
            out["id"] = self.id
        if self.source:
            out["source"] = self.source
        if self.meta:
            out["meta"] = self.meta
        return out
