"""Labellers: who says which of two responses is better, trusted more than the proxy being watched.

``Labeller.compare(prompt, a, b)`` gives a ``Comparison``: the probability that ``a`` is better and a signed
margin (> 0 favours ``a``; its size is the labeller's confidence and sets a comparison's difficulty).

- ``gold``: the lab's gold reward, reached by name like any reward (``load_reward_model("lab-gold")``);
- ``judge:SPEC``: any reward model trusted more than the proxy (a larger RM, an ensemble, execution against
  hidden tests): the margin is its reward gap;
- ``human:FOLDER``: people. Comparisons are exported for annotators as JSONL and CSV; their label files are
  imported later (``rewardgauge monitor queue import``), and the monitor uses the labels when they arrive.
  Until then ``compare`` answers None (pending).
"""

from __future__ import annotations

import abc
import csv
import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rewardgauge.data.records import Prompt, prompt_text
from rewardgauge.errors import InputError
from rewardgauge.io import atomic_path, iter_jsonl, write_text_atomic
from rewardgauge.rewards.base import RewardModel


@dataclass(frozen=True)
class Comparison:
    p_a: float      # probability that a is the better response
    margin: float   # signed strength of the preference, > 0 favours a (the labeller's own units)


@dataclass(frozen=True)
class Buckets:
    """Difficulty of a comparison from |margin| (the labeller's units): easy >= ``easy`` > medium >=
    ``medium`` > hard >= ``tie`` > a tie (no preference; left out of accuracy). The defaults are the lab's gold
    utility gaps (``rewardgauge lab data``'s held-out difficulty); set them for a judge on another scale."""

    easy: float = 1.5
    medium: float = 0.6
    tie: float = 0.15

    def of(self, margin: float) -> str | None:
        gap = abs(margin)
        if gap >= self.easy:
            return "easy"
        if gap >= self.medium:
            return "medium"
        if gap >= self.tie:
            return "hard"
        return None


class Labeller(abc.ABC):
    name: str = "labeller"
    asynchronous: bool = False  # True: labels arrive later (compare_many may answer None)
    buckets: Buckets = Buckets()

    def compare(self, prompt: Prompt, a: str, b: str) -> Comparison | None:
        return self.compare_many([prompt], [a], [b])[0]

    @abc.abstractmethod
    def compare_many(self, prompts: Sequence[Prompt], a: Sequence[str], b: Sequence[str],
                     step: int | None = None) -> list[Comparison | None]:
        """One comparison per (prompt, a, b); None where the label has not arrived yet."""


class RewardLabeller(Labeller):
    """A reward trusted more than the proxy: margin = r(a) − r(b), p_a = sigmoid(margin / temperature)."""

    def __init__(self, reward: RewardModel, name: str = "judge", buckets: Buckets | None = None,
                 temperature: float = 1.0):
        self.reward, self.name, self.temperature = reward, name, temperature
        self.buckets = buckets or Buckets()

    def compare_many(self, prompts, a, b, step=None):
        prompts = list(prompts)
        r = self.reward.score(prompts + prompts, list(a) + list(b)).reward.float().cpu().tolist()
        n = len(prompts)
        return [Comparison(p_a=_sigmoid((r[i] - r[n + i]) / self.temperature), margin=r[i] - r[n + i])
                for i in range(n)]


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x > -60 else 0.0


# --- people ------------------------------------------------------------------------------------------------

PREFERRED = {"a": 1.0, "b": -1.0, "tie": 0.0}
CSV_COLUMNS = ("id", "step", "prompt", "response_a", "response_b", "preferred", "strength", "annotator")


def comparison_id(prompt: Prompt, a: str, b: str) -> str:
    """A stable id for a comparison: the same prompt and responses get the same id in every export."""
    data = json.dumps([prompt_text(prompt), a, b], ensure_ascii=False)
    return hashlib.blake2b(data.encode(), digest_size=8).hexdigest()


class HumanQueue(Labeller):
    """A folder shared with annotators::

        QUEUE/comparisons.jsonl          every comparison exported (id, step, prompt, a, b)
        QUEUE/to_label/step-N.csv|.jsonl  one batch per export, for annotators: fill in ``preferred``
                                         (a | b | tie) and optionally ``strength`` (1 slight .. 3 clear) and
                                         ``annotator``
        QUEUE/labels/*.jsonl|*.csv       label files imported back (``import_labels``): id, preferred,
                                         strength, annotator; several annotators of one id are averaged

    A comparison's p_a is the share of its annotators preferring a (a tie counts half) and its margin the
    mean signed strength (a: +strength, b: −strength, tie: 0), so difficulty buckets read strength.
    """

    name = "human"
    asynchronous = True

    def __init__(self, folder: str | os.PathLike, buckets: Buckets | None = None):
        self.folder = Path(folder)
        self.buckets = buckets or Buckets(easy=2.5, medium=1.5, tie=0.5)
        self._exported: set[str] | None = None

    @property
    def comparisons_file(self) -> Path:
        return self.folder / "comparisons.jsonl"

    def exported(self) -> set[str]:
        if self._exported is None:
            self._exported = {row["id"] for _, row in iter_jsonl(self.comparisons_file)} \
                if self.comparisons_file.is_file() else set()
        return self._exported

    def export(self, prompts: Sequence[Prompt], a: Sequence[str], b: Sequence[str], step: int = 0) -> list[str]:
        """Write the comparisons not exported before as a batch for annotators; returns every id."""
        ids = [comparison_id(p, x, y) for p, x, y in zip(prompts, a, b)]
        done = self.exported()
        rows, seen = [], set()
        for i, (p, x, y) in zip(ids, zip(prompts, a, b)):
            if i not in done and i not in seen:
                seen.add(i)
                rows.append({"id": i, "step": step, "prompt": p, "a": x, "b": y})
        if not rows:
            return ids
        batch = self.folder / "to_label"
        batch.mkdir(parents=True, exist_ok=True)
        lines = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
        write_text_atomic(batch / f"step-{step}.jsonl", lines)
        with atomic_path(batch / f"step-{step}.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(CSV_COLUMNS)
            for r in rows:
                writer.writerow([r["id"], step, prompt_text(r["prompt"]), r["a"], r["b"], "", "", ""])
        with open(self.comparisons_file, "a", encoding="utf-8") as f:  # after the batch: ids never dangle
            f.write(lines)
        done.update(seen)
        return ids

    def labels(self) -> dict[str, Comparison]:
        """Every label imported so far, by comparison id."""
        votes: dict[str, list[tuple[float, float]]] = {}
        folder = self.folder / "labels"
        for path in sorted(folder.glob("*")) if folder.is_dir() else []:
            if path.suffix in (".jsonl", ".csv"):
                for comparison_id_, side, strength in read_labels(path):
                    votes.setdefault(comparison_id_, []).append((side, strength))
        out = {}
        for key, vs in votes.items():
            p_a = sum((s + 1) / 2 for s, _ in vs) / len(vs)
            out[key] = Comparison(p_a=p_a, margin=sum(s * w for s, w in vs) / len(vs))
        return out

    def check_labels(self, path: str | os.PathLike) -> list[tuple[str, float, float]]:
        """The rows of a label file, checked: a bad row stops with its line and field, and so does an id this
        queue never exported (it would label nothing)."""
        rows = read_labels(path)
        unknown = next((i for i, _, _ in rows if i not in self.exported()), None)
        if unknown is not None:
            raise InputError(f"label for comparison id {unknown!r}, which this queue never exported", path=path,
                             field="id")
        return rows

    def import_labels(self, path: str | os.PathLike) -> int:
        """Check a label file and copy it into ``labels/``; returns the number of labels."""
        rows = self.check_labels(path)
        target = self.folder / "labels" / Path(path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(target, Path(path).read_text(encoding="utf-8"))
        return len(rows)

    def compare_many(self, prompts, a, b, step=None):
        ids = self.export(prompts, a, b, step=step or 0)
        known = self.labels()
        return [known.get(i) for i in ids]


def read_labels(path: str | os.PathLike) -> list[tuple[str, float, float]]:
    """(id, side, strength) rows of a label file: side +1 (a), -1 (b) or 0 (tie); strength 1 where not given.
    JSONL or CSV (the exported CSV with ``preferred`` filled in; rows left empty are skipped)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("label file not found", path=path)
    if path.suffix == ".csv":
        try:
            with open(path, newline="", encoding="utf-8") as f:
                rows = [(i + 2, row) for i, row in enumerate(csv.DictReader(f))]
        except (UnicodeDecodeError, csv.Error) as e:
            raise InputError(f"not a readable CSV file ({e})", path=path) from None
    else:
        rows = list(iter_jsonl(path))
    out = []
    for line, row in rows:
        preferred = str(row.get("preferred") or "").strip().lower()
        if not preferred and path.suffix == ".csv":
            continue  # not labelled (yet)
        key = row.get("id")
        if not isinstance(key, str) or not key.strip():
            raise InputError("expected the comparison's id", path=path, line=line, field="id")
        if preferred not in PREFERRED:
            raise InputError(f"expected a, b or tie, got {preferred!r}", path=path, line=line, field="preferred")
        raw = row.get("strength")
        strength = 1.0
        if raw not in (None, ""):
            try:
                strength = float(raw)
            except (TypeError, ValueError):
                strength = math.nan
            if not (math.isfinite(strength) and strength > 0):
                raise InputError(f"expected a positive number, got {raw!r}", path=path, line=line, field="strength")
        out.append((key.strip(), PREFERRED[preferred], strength))
    return out


def load_labeller(spec: str, device: str | None = None, buckets: Buckets | None = None) -> Labeller:
    """``gold`` | ``judge:REWARD_SPEC`` | ``human:FOLDER``."""
    from rewardgauge.rewards.loading import load_reward_model

    if spec == "gold":
        return RewardLabeller(load_reward_model("lab-gold", device=device), "gold", buckets)
    kind, _, rest = spec.partition(":")
    if kind == "judge" and rest:
        return RewardLabeller(load_reward_model(rest, device=device), "judge", buckets)
    if kind == "human" and rest:
        return HumanQueue(rest, buckets)
    raise InputError(f"unknown labeller {spec!r}: use gold, judge:REWARD_SPEC or human:FOLDER", field="labeller")
