"""Outputs (issue 16): ``check_output`` before any work, a lock per output folder, no stale temp folders of our
own making after kill -9, the usual file modes, and OS errors in the one-line form."""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import filelock
import pytest

from rewardgauge.cli import main
from rewardgauge.errors import InputError
from rewardgauge.io import atomic_dir, check_output, normalise_file_modes, output_lock

LAB = ["lab", "data", "--pairs", "20", "--heldout-pairs", "10", "--demos", "10", "--rl-prompts", "5"]


def test_check_output_accepts_writable_places_and_creates_nothing(tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file.jsonl").write_text("old\n")
    assert check_output(tmp_path / "new.jsonl") == tmp_path / "new.jsonl"
    assert check_output(tmp_path / "file.jsonl")  # replaced atomically later
    assert check_output(tmp_path / "a" / "b" / "c.jsonl")  # missing folders are made when writing
    assert check_output(tmp_path / "dir", "dir") and check_output(tmp_path / "x" / "y", "dir")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "file.jsonl"]
    assert list((tmp_path / "dir").iterdir()) == []


@pytest.mark.parametrize("where,kind,message", [
    ("file.jsonl/out.jsonl", "file", "cannot create it: {d}/file.jsonl is a file, not a folder"),
    ("file.jsonl/a/b", "dir", "cannot create it: {d}/file.jsonl is a file, not a folder"),
    ("dir", "file", "is a folder; expected a file name"),
    ("file.jsonl", "dir", "exists and is not a folder"),
])
def test_check_output_refuses_with_one_line(tmp_path, where, kind, message):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file.jsonl").write_text("old\n")
    with pytest.raises(InputError) as e:
        check_output(tmp_path / where, kind, field="out")
    assert str(e.value) == f"{tmp_path / where}: field 'out': {message.format(d=tmp_path)}"


def test_check_output_refuses_proc_and_read_only_folders(tmp_path):
    with pytest.raises(InputError, match=r"^/proc/no-such/x\.jsonl: field 'out': cannot write in /proc: "):
        check_output("/proc/no-such/x.jsonl")
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o555)
    try:
        if os.geteuid() == 0:  # root writes through permission bits: the probe must agree with the real write
            assert check_output(read_only / "x.jsonl")
            assert list(read_only.iterdir()) == []
        else:
            with pytest.raises(InputError, match="cannot write in .*: Permission denied"):
                check_output(read_only / "x.jsonl")
    finally:
        read_only.chmod(0o755)


def test_output_lock_stops_a_second_writer_and_is_reentrant(tmp_path):
    out = tmp_path / "out"
    with output_lock(out):
        with output_lock(out):  # the same process may take it again (a command, then atomic_dir)
            pass
        other = filelock.FileLock(tmp_path / ".out.lock", timeout=0)
        with pytest.raises(filelock.Timeout):
            other.acquire()
    other.acquire()  # released on exit
    try:
        with pytest.raises(InputError, match=r"another process is writing this output \(it holds the lock "):
            with output_lock(out):
                pass
    finally:
        other.release()


def test_a_second_lab_data_process_stops_while_the_first_writes(tmp_path):
    """Two real processes: the first holds the lock of OUT (as lab data does while it generates)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from rewardgauge.io import output_lock
            with output_lock({str(tmp_path / 'lab')!r}):
                print("held", flush=True)
                sys.stdin.read()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main([*LAB, "--out", str(tmp_path / "lab")]) == 2
        assert not (tmp_path / "lab").exists()
    finally:
        holder.communicate("", timeout=60)
    assert main([*LAB, "--out", str(tmp_path / "lab")]) == 0  # the lock went with the process
    assert (tmp_path / "lab" / "world.json").is_file()


def test_atomic_dir_removes_only_its_own_stale_temp_folders(tmp_path):
    for name in (".lab.ab12cd_3.tmp", ".lab.old"):  # what atomic_dir("lab") leaves when killed
        (tmp_path / name).mkdir()
        (tmp_path / name / "train.jsonl").write_text("{}\n")
    keep = [".lab.x.ab12cd_3.tmp", ".labs.ab12cd_3.tmp", ".lab.notes", "lab.ab12cd_3.tmp"]  # not ours, or another
    for name in keep:
        (tmp_path / name).mkdir()
    with atomic_dir(tmp_path / "lab") as tmp:
        (tmp / "a.txt").write_text("a")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*keep, ".lab.lock", "lab"])


def test_kill_9_inside_atomic_dir_leaves_a_temp_folder_that_the_next_run_removes(tmp_path):
    worker = textwrap.dedent(f"""
        import os, signal
        from rewardgauge.io import atomic_dir
        with atomic_dir({str(tmp_path / 'lab')!r}) as tmp:
            (tmp / "train.jsonl").write_bytes(b"x" * 100_000)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    killed = subprocess.run([sys.executable, "-c", worker], capture_output=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    stale = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(stale) == 1 and stale[0].startswith(".lab.")
    assert main([*LAB, "--out", str(tmp_path / "lab")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lab.lock", "lab"]


def test_written_model_files_have_the_usual_mode(tmp_path):
    """safetensors writes 0600; every file of a model folder gets 0666 & ~umask like the rest."""
    from rewardgauge.modeling.policy import init_model

    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"prompt": "a b", "response": "c d"}) + "\n")
    mask = os.umask(0o022)
    try:
        init_model([corpus], tmp_path / "m", preset="tiny")
    finally:
        os.umask(mask)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "m").iterdir()}
    assert modes["model.safetensors"] == 0o644 and set(modes.values()) == {0o644}, modes


def test_normalise_file_modes_follows_the_umask(tmp_path):
    (tmp_path / "sub").mkdir()
    for path in (tmp_path / "a", tmp_path / "sub" / "b"):
        path.write_text("x")
        path.chmod(0o600)
    mask = os.umask(0o027)
    try:
        normalise_file_modes(tmp_path)
    finally:
        os.umask(mask)
    assert {stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "a", tmp_path / "sub" / "b")} == {0o640}


def test_an_os_error_during_the_work_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    """A disk that fills up after the checks: one line naming the file and the reason, no traceback."""
    import rewardgauge.data.io as data_io

    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n")

    def full_disk(path, rows):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(data_io, "write_jsonl_atomic", full_disk)
    assert main(["data", "convert", "--input", str(src), "--out", str(tmp_path / "o.jsonl")]) == 2
    assert capsys.readouterr().err == f"rewardgauge: error: {tmp_path / 'o.jsonl'}: No space left on device\n"


def test_usage_errors_are_one_line(capsys):
    assert main_exit(["rm", "eval", "--batch-size"]) == 2
    assert capsys.readouterr().err == ("rewardgauge: error: argument --batch-size: expected one argument "
                                       "(see rewardgauge rm eval --help)\n")


def main_exit(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code)


def test_one_line_even_for_multi_line_messages_and_lone_surrogates(monkeypatch, capsys, tmp_path):
    import rewardgauge.data.io as data_io

    def bad(*args, **kwargs):
        raise InputError("first\nsecond \ud800", path=Path("f"))

    monkeypatch.setattr(data_io, "read_pairs", bad)  # what data validate reads pairs with
    assert main(["data", "validate", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "rewardgauge: error: f: first second \\ud800\n"
