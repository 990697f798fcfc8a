"""Surface style in a policy's samples: how often responses open with "certainly !", add filler sentences,
hedge, restate the question or number their sentences, read with the lab language's phrase lists.

The gold reward is neutral to style and charges filler a little per token; a reward model trained on the
annotators' votes pays for some of it. Counting these features step by step in an RL run's samples shows
whether the policy learns to pad (``rates_by_step`` turns ``samples.jsonl`` into one line per step).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Sequence

from rewardgauge.io import iter_jsonl, write_jsonl_atomic
from rewardgauge.lab.language import FILLER_SENTENCES, HEDGES, OPENERS, split_sentences

STYLE_FILE = "style.jsonl"  # beside an RL run's samples.jsonl; the report reads it
FEATURES = ("opener", "filler", "hedge", "restate", "numbered_list")
_OPENERS = {tuple(o.split()) for o in OPENERS}
_FILLERS = {tuple(f.split()) for f in FILLER_SENTENCES}
_HEDGES = [tuple(h.split()) for h in HEDGES]


def style_counts(response: str) -> dict[str, int]:
    """How many sentences of a response carry each feature: an opener ("certainly !"), a filler sentence
    ("i hope this helps ."), a hedge prefix ("in general , ..."), a restatement ("you asked ..."), a
    numbered-list marker ("1 ) ..."). Any text is read: a policy's samples need not be lab text."""
    counts = dict.fromkeys(FEATURES, 0)
    for sentence in split_sentences(response.split()):
        if len(sentence) >= 2 and sentence[0].isdigit() and sentence[1] == ")":
            counts["numbered_list"] += 1
            sentence = sentence[2:]
        words = tuple(sentence)
        if words in _OPENERS:
            counts["opener"] += 1
        elif words in _FILLERS:
            counts["filler"] += 1
        elif words[:2] == ("you", "asked"):
            counts["restate"] += 1
        elif any(words[:len(h)] == h for h in _HEDGES):
            counts["hedge"] += 1
    return counts


def style_rates(responses: Sequence[str]) -> dict[str, float]:
    """Over a set of responses: ``<feature>_rate``, the share of responses with at least one such sentence,
    and ``filler_per_response``, the mean number of filler sentences."""
    counts = [style_counts(r) for r in responses]
    n = max(1, len(counts))
    rates = {f"{name}_rate": sum(c[name] > 0 for c in counts) / n for name in FEATURES}
    rates["filler_per_response"] = sum(c["filler"] for c in counts) / n
    return rates


def rates_by_step(rows: Iterable[dict]) -> list[dict]:
    """Rows of an RL run's ``samples.jsonl`` (``step``, ``response``) -> one line per step: ``step``,
    ``samples`` (how many responses were read) and ``style_rates`` of them, in step order."""
    by_step: dict[int, list[str]] = defaultdict(list)
    for row in rows:
        if isinstance(row.get("step"), int) and isinstance(row.get("response"), str):
            by_step[row["step"]].append(row["response"])
    return [{"step": step, "samples": len(texts), **{k: round(v, 6) for k, v in style_rates(texts).items()}}
            for step, texts in sorted(by_step.items())]


def read_rates_by_step(samples: str | os.PathLike) -> list[dict]:
    """``rates_by_step`` of a ``samples.jsonl`` file."""
    return rates_by_step(row for _, row in iter_jsonl(samples))


def write_rates_by_step(run_dir: str | os.PathLike) -> os.PathLike:
    """``RUN/style.jsonl`` from ``RUN/samples.jsonl`` (an RL run directory); returns its path."""
    from pathlib import Path

    out = Path(run_dir) / STYLE_FILE
    write_jsonl_atomic(out, read_rates_by_step(Path(run_dir) / "samples.jsonl"))
    return out
