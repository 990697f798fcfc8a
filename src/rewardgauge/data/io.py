"""Read and write preference records, validated, from JSONL or anything ``datasets`` can load locally.

Sources (``iter_rows``):
- a ``.jsonl`` / ``.ndjson`` file, or a ``.json`` file of JSON lines: parsed here, errors name the file line;
- a ``.json`` file holding one JSON array of objects: row ``i`` is reported as line ``i + 1``;
- a ``datasets`` ``save_to_disk`` folder (``Dataset`` or ``DatasetDict``; pick a split with ``split=``);
- a local ``.csv`` / ``.tsv`` / ``.parquet`` file or a folder of data files, via ``datasets.load_dataset``.
For ``datasets`` sources, error lines are the row index + 1. Nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from rewardgauge.data.records import Demonstration, PreferencePair
from rewardgauge.data.validate import demonstration_from_dict
from rewardgauge.errors import InputError
from rewardgauge.io import iter_jsonl, parse_json, write_jsonl_atomic

if TYPE_CHECKING:
    from rewardgauge.data.formats import PairsRead

R = TypeVar("R")
log = logging.getLogger("rewardgauge.data")

JSONL_SUFFIXES = (".jsonl", ".ndjson")
DATASETS_BUILDERS = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet", ".arrow": "arrow"}


def _drop_nested_nulls(value: Any) -> Any:
    """Arrow gives every struct the union of keys across rows, filling the absent ones with null; a row's
    ``aspects`` would otherwise claim aspects it never had. Top-level nulls are kept ("not set")."""
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if v is not None}
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [{k: x for k, x in v.items() if x is not None} for v in value]
    return value


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[Any]:
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield datasets
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


def _pick_split(ds: Any, split: str | None, path: Path) -> Any:
    if not hasattr(ds, "keys"):  # a Dataset, not a DatasetDict
        if split is not None:
            raise InputError(f"is a single dataset without splits; drop split={split!r}", path=path,
                             field="split")
        return ds
    names = list(ds.keys())
    if split is None:
        if len(names) == 1:
            return ds[names[0]]
        raise InputError(f"has several splits ({', '.join(names)}); choose one", path=path, field="split")
    if split not in names:
        raise InputError(f"no split {split!r} (splits: {', '.join(names)})", path=path, field="split")
    return ds[split]


def _iter_dataset(ds: Any) -> Iterator[tuple[int, dict]]:
    for i, row in enumerate(ds):
        yield i + 1, {k: _drop_nested_nulls(v) for k, v in row.items()}


def _iter_datasets_folder(path: Path, split: str | None) -> Iterator[tuple[int, dict]]:
    with _quiet_datasets() as datasets:
        try:
            ds = datasets.load_from_disk(str(path))
        except Exception as e:  # datasets raises many kinds for a damaged folder
            raise InputError(f"cannot load datasets folder: {e}", path=path) from None
        yield from _iter_dataset(_pick_split(ds, split, path))


# Data files that datasets reads as UTF-8 text (and fails on, deep inside pyarrow, when they are not).
TEXT_SUFFIXES = (*JSONL_SUFFIXES, ".json", ".csv", ".tsv", ".txt")


def _check_utf8(path: Path) -> None:
    """The text data files of ``path`` (a file, or a folder's files outside hidden folders) are UTF-8, else an
    InputError naming the file and line, before ``datasets`` meets the bytes."""
    files = [path] if path.is_file() else sorted(
        f for f in path.rglob("*") if f.is_file() and not any(part.startswith(".") for part in f.relative_to(path).parts))
    for file in files:
        if file.suffix.lower() not in TEXT_SUFFIXES:
            continue
        with open(file, "rb") as f:
            for lineno, raw in enumerate(f, 1):  # a newline byte is never inside a UTF-8 character
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise InputError(f"invalid UTF-8 at byte {e.start} of the line; save the file as UTF-8",
                                     path=file, line=lineno) from None


def _iter_load_dataset(path: Path, split: str | None) -> Iterator[tuple[int, dict]]:
    """Local data files through ``datasets.load_dataset``; its cache goes to a temporary folder so a user's
    cache is neither filled nor consulted (a stale cache entry cannot hide a fixed file)."""
    _check_utf8(path)
    with _quiet_datasets() as datasets, tempfile.TemporaryDirectory(prefix="rewardgauge-ds-") as cache:
        try:
            if path.is_dir():
                ds = datasets.load_dataset(str(path), cache_dir=cache)
            else:
                builder = DATASETS_BUILDERS[path.suffix.lower()]
                kwargs = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
                ds = datasets.load_dataset(builder, data_files=str(path), cache_dir=cache, **kwargs)
        except InputError:
            raise
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InputError(f"cannot load with datasets: {first}", path=path) from None
        yield from _iter_dataset(_pick_split(ds, split, path))


def _iter_json_array(path: Path) -> Iterator[tuple[int, dict]]:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"invalid UTF-8 at byte {e.start}", path=path) from None
    rows = parse_json(text, path)
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InputError(f"expected a JSON object, got {type(row).__name__}", path=path, line=i + 1)
        yield i + 1, row


def _starts_with_bracket(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head[:1] == b"["


def iter_rows(path: str | os.PathLike, *, split: str | None = None) -> Iterator[tuple[int, dict]]:
    """Yield ``(line, row)`` for every row of a local source (see the module docstring for the kinds)."""
    path = Path(path)
    if not path.exists():
        raise InputError("no such file or folder", path=path)
    if path.is_dir():
        if any((path / name).is_file() for name in ("dataset_info.json", "dataset_dict.json", "state.json")):
            yield from _iter_datasets_folder(path, split)
        else:
            yield from _iter_load_dataset(path, split)
        return
    if split is not None:
        raise InputError(f"a single file has no splits; drop split={split!r}", path=path, field="split")
    suffix = path.suffix.lower()
    if suffix == ".json" and _starts_with_bracket(path):
        yield from _iter_json_array(path)
    elif suffix in JSONL_SUFFIXES or suffix == ".json":
        yield from iter_jsonl(path)
    elif suffix in DATASETS_BUILDERS:
        yield from _iter_load_dataset(path, None)
    else:
        raise InputError(f"unsupported file type {suffix or '(none)'!r}; expected .jsonl, .json, "
                         f"{', '.join(DATASETS_BUILDERS)} or a datasets folder", path=path)


def _load(path: str | os.PathLike, build: Callable[..., R], columns: Mapping[str, str] | None,
          split: str | None) -> list[R]:
    return [build(row, path=path, line=line, columns=columns) for line, row in iter_rows(path, split=split)]


def read_pairs(path: str | os.PathLike, columns: Mapping[str, str] | None = None, *,
               split: str | None = None) -> tuple[list[PreferencePair], PairsRead]:
    """Validated PreferencePair records from a JSONL file or a local ``datasets`` source, in any layout of
    ``rewardgauge.data.formats`` (ours; TRL's conversational, conversational implicit-prompt and implicit-prompt
    text formats; hh-rlhf transcripts), and what was found besides: rows per layout, extra columns kept in meta.

    ``columns`` maps our field names to the source's column names, e.g. ``{"chosen": "response_a"}``; with a
    mapping, columns that map to no field are ignored. The first bad row raises ``InputError`` naming the
    file, line and field.
    """
    from rewardgauge.data.formats import PairsRead, pair_from_row

    found = PairsRead()
    pairs = []
    for line, row in iter_rows(path, split=split):
        pair, layout, extras = pair_from_row(row, path=path, line=line, columns=columns)
        pairs.append(pair)
        found.layouts[layout] += 1
        found.extra_columns.update(extras)
    return pairs, found


def load_pairs(path: str | os.PathLike, columns: Mapping[str, str] | None = None, *,
               split: str | None = None) -> list[PreferencePair]:
    """``read_pairs`` without its findings; a source with extra columns or a non-native layout says so once
    (a warning on the ``rewardgauge.data`` logger, which prints to stderr when logging is not set up)."""
    pairs, found = read_pairs(path, columns, split=split)
    for note in found.notes():
        log.warning("note: %s: %s", path, note)
    return pairs


def load_demonstrations(path: str | os.PathLike, columns: Mapping[str, str] | None = None, *,
                        split: str | None = None) -> list[Demonstration]:
    """Load and validate Demonstration records (prompt, response); same sources and rules as ``load_pairs``."""
    return _load(path, demonstration_from_dict, columns, split)


def save_records(path: str | os.PathLike, records: Iterable[PreferencePair | Demonstration]) -> int:
    """Write records as JSONL, atomically (nothing is left behind if a record fails). Returns the count."""
    return write_jsonl_atomic(Path(path), (r.to_dict() for r in records))
