"""The review queue: proposed step labels go to annotators, who accept or flip each; verified labels are
saved atomically after every submission, so the queue resumes where it stopped.

Sharing: each item is labelled by up to ``per_item`` annotators, never twice by the same one; an item is
leased to one session at a time (``lease_seconds``), so two sessions are never shown the same item at once. A
session that reloads its page gets its leased item back, with the draft it had (drafts are saved too).

Files in the output folder:
- ``annotations.jsonl``: one line per submission {index, id, annotator, labels, proposed, time};
- ``verified.jsonl``: StepRecords with each annotated item's labels (the annotators' majority per step; a
  tie keeps the proposal), source ``verified``;
- ``drafts.json``: unfinished work per session.
Pure Python (no torch); thread-safe (one lock), as the web server calls it from a thread pool.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

from rewardgauge.data.steps import StepRecord, is_correct, save_step_records
from rewardgauge.errors import InputError
from rewardgauge.io import read_jsonl, write_json_atomic, write_jsonl_atomic

ANNOTATIONS = "annotations.jsonl"
VERIFIED = "verified.jsonl"
DRAFTS = "drafts.json"


class Conflict(Exception):
    """A submission the queue cannot take (not this session's item, already labelled)."""


@dataclass
class Lease:
    session: str
    annotator: str
    expires: float


def proposed_verdicts(record: StepRecord) -> list[bool | None]:
    return [is_correct(label) for label in record.labels]


class ReviewQueue:
    def __init__(self, items: list[StepRecord], out: str | Path, per_item: int = 1, lease_seconds: float = 600.0,
                 clock=time.time):
        if per_item < 1:
            raise InputError(f"per_item must be at least 1, got {per_item}", field="per_item")
        if not items:
            raise InputError("nothing to review: no items", field="data")
        self.items, self.out, self.per_item = items, Path(out), per_item
        self.lease_seconds, self.clock = lease_seconds, clock
        self.lock = threading.Lock()
        self.out.mkdir(parents=True, exist_ok=True)
        self.annotations: list[dict] = read_jsonl(self.out / ANNOTATIONS) if (self.out / ANNOTATIONS).is_file() else []
        for row in self.annotations:
            if not 0 <= row.get("index", -1) < len(items) or len(row["labels"]) != len(items[row["index"]].steps):
                raise InputError("does not match the items being reviewed (another queue's annotations?)",
                                 path=self.out / ANNOTATIONS, field="index")
        self.drafts: dict[str, dict] = (json.loads((self.out / DRAFTS).read_text(encoding="utf-8"))
                                        if (self.out / DRAFTS).is_file() else {})
        self.leases: dict[int, Lease] = {}

    # --- who labelled what -------------------------------------------------------------------------------

    def _labellers(self, index: int) -> set[str]:
        return {a["annotator"] for a in self.annotations if a["index"] == index}

    def _live_lease(self, index: int) -> Lease | None:
        lease = self.leases.get(index)
        if lease is not None and lease.expires < self.clock():
            del self.leases[index]
            return None
        return lease

    def _item_view(self, index: int, session: str) -> dict:
        record = self.items[index]
        draft = self.drafts.get(session)
        return {"index": index, "id": record.id, "prompt": record.prompt, "steps": record.steps,
                "proposed": [None if x is None else (x if isinstance(x, bool) else float(x)) for x in record.labels],
                "draft": draft if draft and draft.get("index") == index else None}

    def _progress(self, annotator: str) -> dict:
        counts = Counter(a["index"] for a in self.annotations)
        return {"items": len(self.items), "complete": sum(counts[i] >= self.per_item for i in range(len(self.items))),
                "mine": sum(a["annotator"] == annotator for a in self.annotations), "per_item": self.per_item}

    # --- the queue -----------------------------------------------------------------------------------------

    def next_item(self, session: str, annotator: str) -> dict:
        """This session's leased item if it has one (a reload resumes it), else the first item it may take."""
        if not session or not annotator:
            raise Conflict("a session id and an annotator name are needed")
        with self.lock:
            now = self.clock()
            for index, lease in list(self.leases.items()):
                if lease.session == session and self._live_lease(index) is not None:
                    lease.expires = now + self.lease_seconds
                    return {"item": self._item_view(index, session), "progress": self._progress(annotator)}
            for index in range(len(self.items)):
                labellers = self._labellers(index)
                if annotator in labellers or len(labellers) >= self.per_item or self._live_lease(index) is not None:
                    continue
                self.leases[index] = Lease(session, annotator, now + self.lease_seconds)
                return {"item": self._item_view(index, session), "progress": self._progress(annotator)}
            return {"item": None, "progress": self._progress(annotator)}

    def _check_lease(self, session: str, index: int) -> None:
        lease = self._live_lease(index)
        if lease is None or lease.session != session:
            raise Conflict(f"item {index} is not leased to this session (it may have expired); load the next item")

    def save_draft(self, session: str, index: int, labels: list, reviewed: list, cursor: int = 0) -> None:
        with self.lock:
            self._check_lease(session, index)
            self.drafts[session] = {"index": index, "labels": labels, "reviewed": reviewed, "cursor": cursor}
            write_json_atomic(self.out / DRAFTS, self.drafts)

    def submit(self, session: str, annotator: str, index: int, labels: list) -> dict:
        """Record verified labels (one true/false per step) and release the item."""
        with self.lock:
            self._check_lease(session, index)
            record = self.items[index]
            if len(labels) != len(record.steps) or not all(isinstance(x, bool) for x in labels):
                raise Conflict(f"need one true/false label per step ({len(record.steps)})")
            if annotator in self._labellers(index):
                raise Conflict(f"{annotator} has already labelled item {index}")
            self.annotations.append({"index": index, "id": record.id, "annotator": annotator, "labels": labels,
                                     "proposed": proposed_verdicts(record), "time": round(self.clock(), 3)})
            write_jsonl_atomic(self.out / ANNOTATIONS, self.annotations)
            save_step_records(self.out / VERIFIED, self.verified())
            del self.leases[index]
            if self.drafts.pop(session, None) is not None:
                write_json_atomic(self.out / DRAFTS, self.drafts)
            return self._progress(annotator)

    # --- results -------------------------------------------------------------------------------------------

    def verified(self) -> list[StepRecord]:
        """Each annotated item with the annotators' majority label per step (a tie keeps the proposal)."""
        by_item: dict[int, list[list[bool]]] = {}
        for a in self.annotations:
            by_item.setdefault(a["index"], []).append(a["labels"])
        out = []
        for index in sorted(by_item):
            record, votes = self.items[index], by_item[index]
            labels = []
            for k, proposal in enumerate(proposed_verdicts(record)):
                yes = sum(v[k] for v in votes)
                labels.append(proposal if 2 * yes == len(votes) and proposal is not None else 2 * yes > len(votes))
            out.append(dataclasses.replace(record, labels=labels, sources=["verified"] * len(labels),
                                           meta={**record.meta, "annotators": len(votes)}))
        return out

    def stats(self) -> dict:
        return annotation_stats(self.annotations, len(self.items), self.per_item)


def annotation_stats(annotations: list[dict], n_items: int, per_item: int) -> dict:
    """How often proposals were changed, and how much annotators agree where two or more labelled an item:
    per-step agreement over annotator pairs and Cohen's kappa over those pooled pairs."""
    steps = changed = 0
    for a in annotations:
        for label, proposal in zip(a["labels"], a["proposed"]):
            if proposal is not None:
                steps += 1
                changed += label != proposal
    by_item: dict[int, list[list[bool]]] = {}
    for a in annotations:
        by_item.setdefault(a["index"], []).append(a["labels"])
    pairs = [(x, y) for votes in by_item.values() for u, v in combinations(votes, 2) for x, y in zip(u, v)]
    agreement = kappa = None
    if pairs:
        agreement = sum(x == y for x, y in pairs) / len(pairs)
        p_yes = sum(x + y for x, y in pairs) / (2 * len(pairs))
        expected = p_yes ** 2 + (1 - p_yes) ** 2
        kappa = 1.0 if expected == 1 else (agreement - expected) / (1 - expected)
    counts = Counter(a["index"] for a in annotations)
    return {"items": n_items, "per_item": per_item, "annotations": len(annotations),
            "complete_items": sum(c >= per_item for c in counts.values()),
            "annotators": dict(Counter(a["annotator"] for a in annotations)),
            "proposal_steps": steps, "proposals_changed": changed,
            "proposal_change_rate": changed / steps if steps else None,
            "items_with_several_annotators": sum(len(v) >= 2 for v in by_item.values()),
            "step_pairs": len(pairs), "step_agreement": agreement, "cohen_kappa": kappa}
