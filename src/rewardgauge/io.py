"""Atomic file output and JSONL reading. Nothing half-written: write a temp file, then rename.

Every command that writes calls ``check_output`` on each output path before it does any work, so a path that
cannot be written (a parent that is a file, a read-only folder, ``/proc/...``) stops it with one line before a
long run, not with a traceback after it. Folders built with ``atomic_dir`` are locked (``output_lock``): a
second writer stops with one line, and temp folders that a killed run left behind are removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import filelock

from rewardgauge.errors import InputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def os_error_message(e: OSError) -> str:
    """``FILE: reason`` for an OSError (the one-line form of a disk that is full, read-only or gone)."""
    reason = e.strerror or str(e) or type(e).__name__
    return f"{e.filename}: {reason}" if e.filename else reason


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _probe_writable(folder: Path) -> None:
    """Create and remove a file in ``folder``: the one test that read-only mounts, ACLs, /proc and root all
    answer truthfully (``os.access`` says yes to root on a chmod 555 folder and to /proc)."""
    fd, probe = tempfile.mkstemp(prefix=".rewardgauge-probe-", dir=folder)
    os.close(fd)
    os.unlink(probe)


def check_output(path: str | os.PathLike, kind: Literal["file", "dir"] = "file", field: str | None = "out") -> Path:
    """Check, before any work, that ``path`` can be written as a ``kind`` ("file" or "dir"); return it.

    Raises InputError (one line naming the path and ``field``) when ``path`` exists as the other kind, when a
    folder on the way is a file, or when the folder the output goes into cannot take a new file (read-only,
    no permission, ``/proc``). For a folder, both the folder and its parent must be writable: folders are
    built beside their final place and renamed, and their lock file (``output_lock``) lives in the parent.
    Creates nothing: missing parent folders are made when the output is written.
    """
    path = Path(path)
    try:
        absolute = path.absolute()
        if kind == "file" and path.is_dir():
            raise InputError("is a folder; expected a file name", path=path, field=field)
        if kind == "dir" and path.exists() and not path.is_dir():
            raise InputError("exists and is not a folder", path=path, field=field)
        parent = _nearest_existing(absolute.parent)
        if not parent.is_dir():
            raise InputError(f"cannot create it: {parent} is a file, not a folder", path=path, field=field)
        for folder in (parent, absolute) if kind == "dir" and path.is_dir() else (parent,):
            try:
                _probe_writable(folder)
            except OSError as e:
                raise InputError(f"cannot write in {folder}: {e.strerror or e}", path=path, field=field) from None
    except OSError as e:  # a stat refused on the way (a folder without search permission)
        raise InputError(f"cannot check it: {os_error_message(e)}", path=path, field=field) from None
    return path


# One FileLock per lock file in this process, so that nested holds count instead of deadlocking.
_locks: dict[Path, filelock.FileLock] = {}


@contextlib.contextmanager
def output_lock(path: str | os.PathLike) -> Iterator[Path]:
    """Hold an exclusive lock on the output ``path`` for the duration; a second writer stops with InputError.

    The lock is ``flock`` on the file ``.NAME.lock`` beside ``path`` (through ``filelock``; the kernel drops it
    when a process dies, so a killed run never leaves a stale lock; the empty file itself stays). Re-entrant
    within one process: a command may lock its output and then build it with ``atomic_dir``.
    """
    path = Path(path).absolute()
    lock_file = path.parent / f".{path.name}.lock"
    lock = _locks.get(lock_file)
    if lock is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = _locks[lock_file] = filelock.FileLock(lock_file, thread_local=False)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        raise InputError("another process is writing this output (it holds the lock "
                         f"{lock_file}); wait for it to finish or choose another output", path=path) from None
    try:
        yield path
    finally:
        lock.release()
        if not lock.is_locked:
            _locks.pop(lock_file, None)


def check_not_locked(path: str | os.PathLike) -> None:
    """InputError now if another process holds ``output_lock(path)``; writes nothing (without its lock file,
    nobody holds the lock)."""
    path = Path(path).absolute()
    if (path.parent / f".{path.name}.lock").exists():
        with output_lock(path):
            pass


def _remove_stale_temps(path: Path) -> None:
    """Remove the temp folders that ``atomic_dir(path)`` made in runs that were killed before they finished
    (``.NAME.xxxxxxxx.tmp``, ``.NAME.old``). Only called under ``output_lock(path)``: no live run owns them."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.([a-z0-9_]{{8}}\.tmp|old)")
    for entry in path.parent.iterdir():
        if pattern.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)


def normalise_file_modes(folder: str | os.PathLike) -> None:
    """Give every file under ``folder`` the usual mode (0644 under umask 022): safetensors writes 0600."""
    mode = 0o666 & ~_umask()
    for root, _, files in os.walk(folder):
        for name in files:
            file = Path(root, name)
            if not file.is_symlink():
                os.chmod(file, mode)


def _tmp_beside(path: Path, suffix: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on error remove it."""
    path = Path(path)
    tmp = _tmp_beside(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_jsonl_atomic(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Write one JSON object per line, atomically. Returns the number of rows."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
            n += 1
    return n


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Build a directory under a temp name and rename it into place (replacing an old one) on success.

    Holds ``output_lock(path)`` throughout, removes temp folders that killed runs left, and gives the files
    the usual modes before the rename."""
    path = Path(path)
    with output_lock(path):
        _remove_stale_temps(path)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        os.chmod(tmp, 0o777 & ~_umask())
        try:
            yield tmp
            normalise_file_modes(tmp)
            if path.exists():
                old = path.with_name(f".{path.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def append_jsonl(path: str | os.PathLike, row: dict) -> None:
    """Append one line and flush: metrics logs survive a crash up to the last complete line."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
        f.flush()


def parse_json(text: str, path: str | os.PathLike, line: int | None = None) -> Any:
    """``json.loads`` whose every failure is an InputError naming ``path`` and ``line``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON: {e.msg} (column {e.colno})", path=path,
                         line=e.lineno if line is None else line) from None
    except RecursionError:
        raise InputError("invalid JSON: nested too deeply", path=path, line=line) from None
    except ValueError as e:  # an integer of more than 4,300 digits (Python's int-from-string limit)
        raise InputError(f"invalid JSON: {str(e).split(';')[0]}", path=path, line=line) from None


def read_json_object(path: str | os.PathLike) -> dict:
    """The JSON object in ``path`` (a model's info file, ensemble.json...); anything else is one InputError."""
    obj = parse_json(Path(path).read_text(encoding="utf-8"), path)
    if not isinstance(obj, dict):
        raise InputError(f"expected a JSON object, got {type(obj).__name__}", path=path)
    return obj


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)`` for each non-blank line; a bad line raises InputError naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path=path)
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(f"invalid UTF-8 at byte {e.start}", path=path, line=lineno) from None
            if not text.strip():
                continue
            obj = parse_json(text, path, lineno)
            if not isinstance(obj, dict):
                raise InputError(f"expected a JSON object, got {type(obj).__name__}", path=path, line=lineno)
            yield lineno, obj


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    return [obj for _, obj in iter_jsonl(path)]
