"""A tiny word language for tests: responses with more "good" than "bad" words are preferred."""

from __future__ import annotations

import json
import random
from pathlib import Path

GOOD = ["good", "great", "fine", "nice"]
BAD = ["bad", "poor", "awful", "ugly"]
NEUTRAL = ["the", "a", "cat", "dog", "runs", "sits", "on", "mat", "and", "then"]
PROMPTS = ["describe the cat .", "describe the dog .", "tell me about the mat ."]


def response(rng: random.Random, score: int, length: int) -> str:
    words = [rng.choice(NEUTRAL) for _ in range(length)]
    pool = GOOD if score > 0 else BAD
    for _ in range(abs(score)):
        words.insert(rng.randrange(len(words) + 1), rng.choice(pool))
    return " ".join(words) + " ."


def make_pairs(n: int, seed: int = 0) -> list[dict]:
    """Pairs whose chosen response has a higher (good - bad) score; votes and aspects are filled in too."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        hi = rng.randint(0, 2)
        lo = hi - rng.randint(1, 3)
        chosen, rejected = response(rng, hi, rng.randint(2, 8)), response(rng, lo, rng.randint(2, 8))
        gap = hi - lo
        votes = [1] * (3 + gap) + [0] * max(0, 3 - gap)
        rows.append({"id": f"p{i}", "prompt": rng.choice(PROMPTS), "chosen": chosen, "rejected": rejected,
                     "votes": votes, "margin": float(gap),
                     # "tone" follows the words; "brevity" prefers the shorter response (labelled on half the pairs)
                     "aspects": {"tone": 1.0, **({"brevity": float(len(chosen) < len(rejected))} if i % 2 else {})}})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def make_demos(n: int, seed: int = 0) -> list[dict]:
    """Demonstrations: "count N ." -> the words "one two ... N"-like pattern, learnable in a few steps."""
    rng = random.Random(seed)
    numbers = ["one", "two", "three", "four", "five", "six"]
    rows = []
    for i in range(n):
        k = rng.randint(1, 6)
        rows.append({"id": f"d{i}", "prompt": f"count to {numbers[k - 1]} .", "response": " ".join(numbers[:k]) + " ."})
    return rows
