"""Read and write preference records. (Minimal first version; validation and adapters are being extended.)"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from rewardlens.data.records import Demonstration, PreferencePair
from rewardlens.io import iter_jsonl, write_jsonl_atomic


def load_pairs(path: str | os.PathLike) -> list[PreferencePair]:
    """Load PreferencePair records from a JSONL file."""
    return [PreferencePair(**obj) for _, obj in iter_jsonl(path)]


def load_demonstrations(path: str | os.PathLike) -> list[Demonstration]:
    """Load Demonstration records (prompt, response) from a JSONL file."""
    return [Demonstration(**obj) for _, obj in iter_jsonl(path)]


def save_records(path: str | os.PathLike, records: Iterable[PreferencePair | Demonstration]) -> int:
    """Write records as JSONL, atomically."""
    return write_jsonl_atomic(Path(path), (r.to_dict() for r in records))
