"""Run untrusted Python in its own subprocess behind layered isolation, and kill all of it afterwards.

Every execution gets: a fresh, size-capped work directory; a clean environment; a new session; rlimits
(CPU, address space, file size, open files, stack, no core dumps, processes under a dedicated uid); a wall
clock deadline; stdout/stderr read with a byte cap and the deadline (leaked children cannot hang the
harness by holding the pipes); and a kill of the whole process tree at the end. On top, a backend:

- ``bwrap``: bubblewrap namespaces (mount, PID, net, IPC, UTS, user) with only ``/usr`` read-only, a tmpfs
  work dir, ``/`` and ``/dev`` read-only, plus a seccomp filter. The PID namespace dies with the sandbox,
  so ``setsid`` daemons die too.
- ``landlock``: no namespaces (for kernels where unprivileged user namespaces are blocked): Landlock
  confines the filesystem, TCP and signals, seccomp blocks sockets and process creation.
- ``rlimits``: seccomp + rlimits only. It cannot hide files or the host network; it warns loudly, and as
  root it is refused unless ``allow_unsafe=True``.

As root, the harness first drops the sandboxed process to a dedicated uid (one per concurrent execution,
locked across processes): root ignores RLIMIT_NPROC, and bwrap run as root maps the sandbox to real root.
For bwrap, util-linux ``setpriv`` (uid drop, parent-death signal) and ``prlimit`` (rlimits) do this in the
exec chain, so Python can vfork: a fork of a harness with torch loaded took 36 ms, vfork under 1 ms. The
fallbacks still need ``preexec_fn`` (Landlock and seccomp are applied between fork and exec).
The backend is chosen at start-up by running a tiny program under each in that order
(``probe_backends``); every ``ExecResult`` records the backend and its layers.
Measurements and pitfalls behind these choices: ``/work/shared/notes/sandbox.md``.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import pwd
import re
import select
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Literal, get_args

from rewardgauge.sandbox import layers

log = logging.getLogger("rewardgauge.sandbox")

Backend = Literal["bwrap", "landlock", "rlimits"]
BACKENDS: tuple[str, ...] = get_args(Backend)
_MiB = 1 << 20
# After the main process exits, how long leaked children may keep the pipes open before being killed.
_EXIT_GRACE_S = 0.25
# Environment inside the sandbox: nothing from the harness leaks in.
_BASE_ENV = {
    "PATH": "/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "MALLOC_ARENA_MAX": "2",  # glibc arenas reserve address space; RLIMIT_AS would otherwise stop threads
    "PYTHONHASHSEED": "0",    # reproducible set/dict order of strings, so evaluations are repeatable
    "PYTHONDONTWRITEBYTECODE": "1",
}


@dataclass(frozen=True)
class Limits:
    """Resource limits of one execution."""

    timeout_s: float = 10.0
    cpu_s: int | None = None  # default: the wall timeout rounded up, plus one second
    memory_mb: int = 512      # RLIMIT_AS: virtual memory, so it also bounds thread stacks
    file_size_mb: int = 16    # RLIMIT_FSIZE: per file
    disk_mb: int = 64         # size of the tmpfs work dir: the total the program can write
    open_files: int = 64
    processes: int = 64       # RLIMIT_NPROC; applied only under a dedicated uid (it counts per uid)
    stack_mb: int = 8
    output_bytes: int = _MiB  # cap per stream; more output kills the program (status "output_limit")

    def __post_init__(self) -> None:
        for name in ("memory_mb", "file_size_mb", "disk_mb", "open_files", "processes", "stack_mb",
                     "output_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Limits.{name} must be positive, got {getattr(self, name)}")
        if self.timeout_s <= 0:
            raise ValueError(f"Limits.timeout_s must be positive, got {self.timeout_s}")

    @property
    def cpu_seconds(self) -> int:
        return max(1, self.cpu_s if self.cpu_s is not None else int(self.timeout_s) + 2)

    def rlimits(self, dedicated_uid: bool) -> layers.RlimitPlan:
        return layers.RlimitPlan(cpu_s=self.cpu_seconds, address_space=self.memory_mb * _MiB,
                                 file_size=self.file_size_mb * _MiB, open_files=self.open_files,
                                 stack=self.stack_mb * _MiB, processes=self.processes if dedicated_uid else None)


@dataclass
class ExecResult:
    """What one execution did.

    status: "ok" (exit 0), "error" (non-zero exit), "signal" (killed by a signal), "timeout" (wall deadline
    or CPU limit), "output_limit" (more output than the cap; the program was killed), "sandbox_error"
    (the sandbox itself failed to start the program).
    """

    status: str
    exit_code: int | None
    signal: int | None
    stdout: str
    stderr: str
    duration_s: float
    backend: str
    layers: tuple[str, ...] = ()
    cpu_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict:
        out = asdict(self)
        out["layers"] = list(self.layers)
        return out


# ---------------------------------------------------------------------------------------- interpreter

def default_python() -> str:
    """The interpreter the sandbox runs: the system one (only ``/usr`` is bound), else this one's base."""
    if os.access("/usr/bin/python3", os.X_OK):
        return "/usr/bin/python3"
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def _install_root(python: str) -> str | None:
    """The directory to expose read-only for an interpreter outside /usr (its prefix), else None."""
    real = os.path.realpath(python)
    if real.startswith("/usr/"):
        return None
    return os.path.dirname(os.path.dirname(real))


# ------------------------------------------------------------------------------------------ uid slots

_UID_BASE = int(os.environ.get("REWARDGAUGE_SANDBOX_UID_BASE", "1600000000"))
_UID_COUNT = 4096


class _UidPool:
    """Dedicated uids for sandboxed processes when the harness is root: one per concurrent execution.

    A uid is claimed with an flock on a lock file in a root-only directory, so two harness processes never
    share one (RLIMIT_NPROC counts per uid, system-wide, and a uid's leftovers are killed by uid). The lock
    file stays open, so the lock is held for the life of the process (uids are reused within it); the
    kernel drops it when the process exits.
    """

    def __init__(self) -> None:
        self._free: list[int] = []
        self._next = _UID_BASE
        self._lock = threading.Lock()

    @functools.cached_property
    def _dir(self) -> str:
        for parent in ("/run", tempfile.gettempdir()):
            path = os.path.join(parent, "rewardgauge-sandbox-uids")
            try:
                os.makedirs(path, mode=0o700, exist_ok=True)
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and not st.st_mode & 0o077:
                return path
        raise RuntimeError("no root-owned private directory for sandbox uid locks (/run or the temp dir)")

    def acquire(self) -> int:
        with self._lock:
            if self._free:
                return self._free.pop()
            while self._next < _UID_BASE + _UID_COUNT:
                uid = self._next
                self._next += 1
                if _uid_has_account(uid):
                    continue
                fd = os.open(os.path.join(self._dir, f"{uid}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                kill_uid(uid)  # leftovers of a harness that crashed while holding this uid
                return uid
            raise RuntimeError(f"all {_UID_COUNT} sandbox uids from {_UID_BASE} are in use")

    def release(self, uid: int) -> None:
        with self._lock:
            self._free.append(uid)


def _uid_has_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


_uids = _UidPool()


def kill_uid(uid: int) -> None:
    """SIGKILL every process owned by ``uid`` (as root): ``kill(-1)`` run as that uid reaches exactly them."""
    kill = shutil.which("kill", path="/usr/bin:/bin")
    if kill is None:
        return
    subprocess.run([kill, "-s", "KILL", "--", "-1"], user=uid, group=uid, extra_groups=[],
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/",
                   env={"PATH": "/usr/bin:/bin"}, check=False)


@contextlib.contextmanager
def _uid_slot() -> Iterator[int | None]:
    if os.geteuid() != 0:
        yield None
        return
    uid = _uids.acquire()
    try:
        yield uid
    finally:
        _uids.release(uid)


# -------------------------------------------------------------------------------------------- backends

@dataclass
class _Spawn:
    """How to start one execution under a backend, and what to undo afterwards."""

    argv: list[str]
    cwd: str
    env: dict[str, str]
    # Runs between fork and exec. None lets Python vfork instead of fork, which matters: forking a harness
    # with torch loaded (300 MB) took 36 ms, vfork under 1 ms. So does ``popen_uid`` (a uid for Popen).
    preexec: Callable[[], None] | None
    popen_uid: int | None = None
    pass_fds: tuple[int, ...] = ()
    close_fds_after_spawn: tuple[int, ...] = ()
    cleanup: Callable[[], None] = lambda: None
    # Stops a program that is still running (timeout, output cap) before its process group is killed.
    terminate: Callable[[subprocess.Popen], None] = lambda proc: None
    # Exit codes above 128 mean "killed by signal rc-128" (bwrap reports a killed child that way).
    signal_from_high_exit: bool = False


class _Backend:
    name = ""

    def __init__(self, python: str, python_args: tuple[str, ...], seccomp: bool, env: dict[str, str]):
        self.python = python
        self.python_args = python_args
        self.env = {**_BASE_ENV, **env}
        self.extra_ro = tuple(p for p in [_install_root(python)] if p)
        self.seccomp = layers.seccomp_program() if seccomp else None

    def unavailable(self) -> str | None:
        """Why this backend cannot run here, or None."""
        return None

    def layers(self, uid: int | None) -> tuple[str, ...]:
        out = [self.name] + (["seccomp"] if self.seccomp else []) + (["rlimits"] if self.name != "rlimits" else [])
        return tuple(out + (["uid-drop"] if uid is not None else []))

    def spawn(self, code: bytes, limits: Limits, uid: int | None) -> _Spawn:
        raise NotImplementedError


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name, 0)  # no CLOEXEC: bwrap reads it after exec
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


class _Bwrap(_Backend):
    name = "bwrap"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.bwrap = shutil.which("bwrap") or shutil.which("bwrap", path="/usr/bin:/bin:/usr/local/bin")
        # util-linux tools that drop the uid, set the parent-death signal and the rlimits in the exec chain,
        # so no preexec_fn is needed; without them the same is done in preexec_fn.
        self.setpriv = shutil.which("setpriv", path="/usr/bin:/bin")
        self.prlimit = shutil.which("prlimit", path="/usr/bin:/bin")

    def unavailable(self) -> str | None:
        return None if self.bwrap else "bubblewrap (bwrap) not installed; apt-get install bubblewrap"

    def _root_links(self) -> list[str]:
        args: list[str] = []
        for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            path = "/" + name
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        return args

    def spawn(self, code: bytes, limits: Limits, uid: int | None) -> _Spawn:
        code_fd = _memfd("main.py", code)
        info_read, info_write = os.pipe()
        fds = [code_fd, info_write]
        # --as-pid-1: no bwrap init inside; the outer bwrap itself reaps the program. (With an init, the
        # outer exits as soon as the init reports, orphaning it to the host's PID 1; zombies that PID 1
        # is slow to reap count against the uid's RLIMIT_NPROC.) The PID namespace still dies with it.
        argv = [self.bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--as-pid-1",
                "--info-fd", str(info_write),
                "--ro-bind", "/usr", "/usr", *self._root_links()]
        for path in self.extra_ro:
            argv += ["--ro-bind", path, path]
        argv += ["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev",
                 # One size-capped tmpfs holds everything writable; /tmp points into it.
                 "--size", str(limits.disk_mb * _MiB), "--tmpfs", "/box", "--dir", "/box/tmp",
                 "--symlink", "box/tmp", "/tmp", "--remount-ro", "/",
                 "--ro-bind-data", str(code_fd), "/box/main.py",
                 "--clearenv", "--hostname", "sandbox", "--uid", "65534", "--gid", "65534", "--chdir", "/box"]
        for key, value in {**self.env, "HOME": "/box", "TMPDIR": "/tmp"}.items():
            argv += ["--setenv", key, value]
        if self.seccomp is not None:
            # With --as-pid-1 the program is pid 1 of its PID namespace.
            bpf_fd = _memfd("seccomp", self.seccomp.for_pid(1))
            fds.append(bpf_fd)
            argv += ["--seccomp", str(bpf_fd)]
        argv += [self.python, *self.python_args, "/box/main.py"]
        plan = limits.rlimits(dedicated_uid=uid is not None)
        preexec, popen_uid = None, None
        if self.setpriv and self.prlimit:
            drop = ["--reuid", str(uid), "--regid", str(uid), "--clear-groups"] if uid is not None else []
            argv = [self.setpriv, *drop, "--pdeathsig", "KILL", "--", self.prlimit, *plan.prlimit_args(), "--",
                    *argv]
        else:
            popen_uid = uid

            def preexec() -> None:
                layers.set_parent_death_signal()
                plan.apply()

        def terminate(proc: subprocess.Popen) -> None:
            _kill_bwrap_child(proc, info_read)

        return _Spawn(argv=argv, cwd="/", env={"PATH": "/usr/bin:/bin"}, preexec=preexec, popen_uid=popen_uid,
                      pass_fds=tuple(fds), close_fds_after_spawn=tuple(fds), cleanup=lambda: os.close(info_read),
                      terminate=terminate, signal_from_high_exit=True)


_CHILD_PID = re.compile(rb'"child-pid"\s*:\s*(\d+)')


def _kill_bwrap_child(proc: subprocess.Popen, info_fd: int) -> None:
    """Kill the sandboxed program (bwrap's child, named on --info-fd) and let bwrap reap it and exit.

    Killing bwrap first would orphan the program to the host's PID 1 as a zombie. The pidfd is checked
    to belong to a child of this bwrap before it is used, so a recycled pid is never signalled.
    """
    os.set_blocking(info_fd, False)
    try:
        match = _CHILD_PID.search(os.read(info_fd, 4096))
    except BlockingIOError:
        match = None
    if match is None:
        return
    child = int(match.group(1))
    try:
        pidfd = os.pidfd_open(child)
    except OSError:
        return
    try:
        with open(f"/proc/{child}/stat", "rb") as f:
            ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        if ppid == proc.pid:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            _wait_exit(proc.pid, 1.0)
    except (OSError, ValueError, IndexError):
        pass
    finally:
        os.close(pidfd)


class _Direct(_Backend):
    """The program runs directly on the host filesystem in a work dir; used by the two fallbacks."""

    def landlock_plan(self, workdir: str) -> layers.LandlockPlan | None:
        return None

    def spawn(self, code: bytes, limits: Limits, uid: int | None) -> _Spawn:
        workdir = tempfile.mkdtemp(prefix="rewardgauge-box-")
        mounted = False
        try:
            if uid is not None:
                layers.mount_tmpfs(workdir, limits.disk_mb * _MiB, uid)
                mounted = True
            path = os.path.join(workdir, "main.py")
            with open(path, "wb") as f:
                f.write(code)
            os.chmod(path, 0o444)
        except BaseException:
            _remove_workdir(workdir, mounted)
            raise
        plan = limits.rlimits(dedicated_uid=uid is not None)
        landlock = self.landlock_plan(workdir)
        seccomp = self.seccomp

        def preexec() -> None:
            layers.set_parent_death_signal()
            plan.apply()
            if landlock is not None:
                landlock.apply()
            if seccomp is not None:
                layers.load_seccomp(seccomp.for_pid(os.getpid()))

        def cleanup() -> None:
            if uid is not None:
                kill_uid(uid)
            _remove_workdir(workdir, mounted)

        env = {**self.env, "HOME": workdir, "TMPDIR": workdir}
        return _Spawn(argv=[self.python, *self.python_args, "main.py"], cwd=workdir, env=env,
                      preexec=preexec, popen_uid=uid, cleanup=cleanup)

    def layers(self, uid: int | None) -> tuple[str, ...]:
        return super().layers(uid) + (("tmpfs",) if uid is not None else ())


class _Landlock(_Direct):
    name = "landlock"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.abi = layers.landlock_abi()

    def unavailable(self) -> str | None:
        return None if self.abi >= 1 else "Landlock is not enabled in this kernel"

    def landlock_plan(self, workdir: str) -> layers.LandlockPlan:
        ro = ["/usr", "/bin", "/sbin", "/lib", "/lib64", *self.extra_ro]
        return layers.LandlockPlan(abi=self.abi, read_exec=tuple(ro), read_write=(workdir,),
                                   files_rw=("/dev/null",), files_ro=("/dev/urandom", "/etc/ld.so.cache"))

    def layers(self, uid: int | None) -> tuple[str, ...]:
        return (f"landlock-abi{self.abi}",) + super().layers(uid)[1:]


class _Rlimits(_Direct):
    name = "rlimits"


_BACKEND_CLASSES = {"bwrap": _Bwrap, "landlock": _Landlock, "rlimits": _Rlimits}


def _remove_workdir(path: str, mounted: bool) -> None:
    if mounted:
        layers.unmount(path)

    def retry(func, p, _exc):  # the program may have chmod-ed its own files to 000
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), 0o700)
            os.chmod(p, 0o700)
            func(p)

    shutil.rmtree(path, onerror=retry)


# ------------------------------------------------------------------------------------------- execution

def _read_capped(proc: subprocess.Popen, stdin: bytes, deadline: float, cap: int) -> tuple[bytes, bytes, str]:
    """Feed stdin and collect stdout/stderr until both close, the cap, or the deadline.

    Returns (stdout, stderr, why) with why in {"exited", "timeout", "output_limit"}. Exit is detected with a
    pidfd (Linux >= 5.3) without reaping the process, so the caller can still kill its process group safely.
    """
    sel = selectors.DefaultSelector()
    bufs = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
    for fd in bufs:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    pidfd = os.pidfd_open(proc.pid)
    sel.register(pidfd, selectors.EVENT_READ)
    stdin_fd, pending = proc.stdin.fileno(), memoryview(stdin)
    if pending:
        os.set_blocking(stdin_fd, False)
        sel.register(stdin_fd, selectors.EVENT_WRITE)
    else:
        proc.stdin.close()
    open_reads, exited_at, why = len(bufs), None, "exited"
    try:
        while open_reads or exited_at is None:
            now = time.monotonic()
            if now >= deadline:
                why = "timeout"
                break
            if exited_at is not None and now - exited_at > _EXIT_GRACE_S:
                break
            wait = deadline - now if exited_at is None else min(deadline - now, exited_at + _EXIT_GRACE_S - now)
            for key, _ in sel.select(max(wait, 0.0)):
                fd = key.fd
                if fd == pidfd:
                    sel.unregister(fd)
                    exited_at = time.monotonic()
                elif fd == stdin_fd:
                    try:
                        n = os.write(fd, pending[:65536])
                    except BrokenPipeError:  # the program closed its stdin: drop the rest
                        n = len(pending)
                    pending = pending[n:]
                    if not pending:
                        sel.unregister(fd)
                        proc.stdin.close()
                else:
                    data = os.read(fd, 65536)
                    if not data:
                        sel.unregister(fd)
                        open_reads -= 1
                        continue
                    bufs[fd] += data
                    if len(bufs[fd]) > cap:
                        del bufs[fd][cap:]
                        why = "output_limit"
                        return bytes(bufs[proc.stdout.fileno()]), bytes(bufs[proc.stderr.fileno()]), why
    finally:
        sel.close()
        os.close(pidfd)
    return bytes(bufs[proc.stdout.fileno()]), bytes(bufs[proc.stderr.fileno()]), why


def _wait_exit(pid: int, timeout: float) -> None:
    """Wait up to ``timeout`` for ``pid`` to exit, without reaping it."""
    fd = os.pidfd_open(pid)
    try:
        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)


def _status(rc: int, why: str, spawn: _Spawn, stderr: bytes, cpu_spent: bool) -> tuple[str, int | None, int | None]:
    """(status, exit_code, signal) from the return code, why reading stopped, and whether the CPU limit
    was used up (SIGXCPU at the soft limit; SIGKILL at the hard one, or at once for bwrap's pid 1, which
    ignores SIGXCPU)."""
    sig = -rc if rc < 0 else (rc - 128 if spawn.signal_from_high_exit and rc > 128 else None)
    code = None if sig is not None else rc
    if why in ("timeout", "output_limit"):
        return why, code, sig
    if sig in (signal.SIGXCPU, signal.SIGKILL) and cpu_spent:
        return "timeout", code, sig
    if sig is not None:
        return "signal", code, sig
    if rc == 0:
        return "ok", code, sig
    if spawn.signal_from_high_exit and rc == 1 and stderr.startswith(b"bwrap: "):
        return "sandbox_error", code, sig
    return "error", code, sig


def _execute(backend: _Backend, code: str, stdin: bytes, limits: Limits, uid: int | None) -> ExecResult:
    spawn = backend.spawn(code.encode("utf-8", "surrogateescape"), limits, uid)
    start = time.monotonic()
    proc = None
    try:
        try:
            proc = subprocess.Popen(
                spawn.argv, cwd=spawn.cwd, env=spawn.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, pass_fds=spawn.pass_fds, start_new_session=True,
                preexec_fn=spawn.preexec, user=spawn.popen_uid, group=spawn.popen_uid,
                extra_groups=[] if spawn.popen_uid is not None else None)
        finally:
            for fd in spawn.close_fds_after_spawn:
                os.close(fd)
        why = "error"
        try:
            out, err, why = _read_capped(proc, stdin, start + limits.timeout_s, limits.output_bytes)
        finally:
            if why != "exited":
                spawn.terminate(proc)
            # The leader is not reaped yet, so its process group id cannot have been reused.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            # wait4 rather than wait(): the CPU time tells a CPU-limit kill from other signals.
            _, wstatus, usage = os.wait4(proc.pid, 0)
            proc.returncode = rc = os.waitstatus_to_exitcode(wstatus)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                with contextlib.suppress(OSError):
                    stream.close()
        duration = time.monotonic() - start
    except (OSError, subprocess.SubprocessError) as e:
        if proc is None:  # the spawn itself failed (e.g. a layer could not be applied in preexec_fn)
            return ExecResult(status="sandbox_error", exit_code=None, signal=None, stdout="",
                              stderr=f"sandbox: could not start the program: {e}",
                              duration_s=time.monotonic() - start, backend=backend.name,
                              layers=backend.layers(uid))
        raise
    finally:
        spawn.cleanup()
    cpu = usage.ru_utime + usage.ru_stime  # includes the program when bwrap is the direct child
    status, exit_code, sig = _status(rc, why, spawn, err, cpu >= limits.cpu_seconds - 0.05)
    return ExecResult(status=status, exit_code=exit_code, signal=sig,
                      stdout=out.decode("utf-8", "replace"), stderr=err.decode("utf-8", "replace"),
                      duration_s=duration, backend=backend.name, layers=backend.layers(uid), cpu_s=cpu)


# --------------------------------------------------------------------------------------------- probing

@dataclass(frozen=True)
class Probe:
    """Whether a backend works here, and why not."""

    backend: str
    ok: bool
    reason: str = ""
    layers: tuple[str, ...] = ()


_PROBE_CODE = "print(6 * 7)\n"


def _probe(backend: _Backend, allow_unsafe: bool) -> Probe:
    why = backend.unavailable()
    if why is None and backend.name == "rlimits" and os.geteuid() == 0 and not allow_unsafe:
        why = ("refused as root: it cannot hide host files or the network (to use it anyway: --allow-unsafe on "
               "the command line, allow_unsafe=True in Python)")
    if why is not None:
        return Probe(backend.name, False, why)
    with _uid_slot() as uid:
        try:
            res = _execute(backend, _PROBE_CODE, b"", Limits(timeout_s=10), uid)
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            return Probe(backend.name, False, f"{type(e).__name__}: {e}")
    if res.status != "ok" or res.stdout.strip() != "42":
        detail = (res.stderr.strip().splitlines() or [res.status])[-1][:200]
        return Probe(backend.name, False, f"test program failed ({res.status}): {detail}")
    return Probe(backend.name, True, "", res.layers)


_probe_cache: dict[tuple, list[Probe]] = {}
_probe_lock = threading.Lock()


def probe_backends(python: str | None = None, seccomp: bool = True, allow_unsafe: bool = False,
                   python_args: Sequence[str] = ("-s",)) -> list[Probe]:
    """Try each backend in order of preference with a tiny program; cached per process."""
    python = python or default_python()
    key = (python, seccomp, allow_unsafe, tuple(python_args))
    with _probe_lock:
        if key not in _probe_cache:
            if seccomp and (why := layers.seccomp_unavailable_reason()):
                raise RuntimeError(f"seccomp requested but unavailable: {why}")
            _probe_cache[key] = [_probe(cls(python, tuple(python_args), seccomp, {}), allow_unsafe)
                                 for cls in _BACKEND_CLASSES.values()]
        return list(_probe_cache[key])


# --------------------------------------------------------------------------------------------- Sandbox

@dataclass
class Sandbox:
    """Runs untrusted Python programs; thread-safe, so one instance can serve a worker pool.

    backend: "auto" (first working of bwrap, landlock, rlimits) or one of them by name.
    seccomp: install the seccomp filter (turn off only to test the other layers on their own).
    allow_unsafe: permit the ``rlimits`` backend when running as root.
    python / python_args: the interpreter run inside (default: the system ``/usr/bin/python3 -s``).
    env: extra environment variables for the program.
    """

    limits: Limits = field(default_factory=Limits)
    backend: str = "auto"
    seccomp: bool = True
    allow_unsafe: bool = False
    python: str | None = None
    python_args: tuple[str, ...] = ("-s",)
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.backend != "auto" and self.backend not in BACKENDS:
            raise ValueError(f"unknown sandbox backend {self.backend!r} (known: auto, {', '.join(BACKENDS)})")
        self.python = self.python or default_python()
        probes = probe_backends(self.python, self.seccomp, self.allow_unsafe, self.python_args)
        wanted = [p for p in probes if self.backend in ("auto", p.backend)]
        chosen = next((p for p in wanted if p.ok), None)
        if chosen is None:
            reasons = "; ".join(f"{p.backend}: {p.reason}" for p in wanted)
            raise RuntimeError(f"no usable sandbox backend ({reasons})")
        self._impl = _BACKEND_CLASSES[chosen.backend](self.python, tuple(self.python_args), self.seccomp, self.env)
        self.probes = probes
        self.layers = chosen.layers
        weak = []
        if chosen.backend == "rlimits":
            weak.append("the program sees the host filesystem and can read and write whatever its uid can")
        if not self.seccomp:
            weak.append("without seccomp it can open sockets and create processes")
        if weak:
            msg = (f"sandbox backend {'+'.join(chosen.layers)} is WEAK isolation: {'; '.join(weak)}. "
                   "Use bubblewrap (apt-get install bubblewrap) or Landlock with seccomp for untrusted code.")
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
            log.warning(msg)

    @property
    def backend_name(self) -> str:
        return self._impl.name

    def run(self, code: str, stdin: bytes = b"", limits: Limits | None = None) -> ExecResult:
        """Run ``code`` as the main script of a fresh sandboxed interpreter."""
        with _uid_slot() as uid:
            return _execute(self._impl, code, stdin, limits or self.limits, uid)

    def run_many(self, codes: Sequence[str], stdins: Sequence[bytes] | None = None, limits: Limits | None = None,
                 workers: int | None = None) -> list[ExecResult]:
        """Run several programs on a pool of ``workers`` threads (default: CPU count); results in order."""
        stdins = stdins if stdins is not None else [b""] * len(codes)
        if len(stdins) != len(codes):
            raise ValueError(f"{len(codes)} programs but {len(stdins)} stdin payloads")
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            return list(pool.map(lambda cs: self.run(cs[0], cs[1], limits), zip(codes, stdins)))


_default: dict[str, Sandbox] = {}
_default_lock = threading.Lock()


def run_python(code: str, limits: Limits | None = None, stdin: bytes = b"", backend: str = "auto") -> ExecResult:
    """Run ``code`` in the default sandbox (built on first use, backend probed once per process)."""
    with _default_lock:
        if backend not in _default:
            _default[backend] = Sandbox(backend=backend)
    return _default[backend].run(code, stdin=stdin, limits=limits)
