"""Tasks with hidden tests, executed in the sandbox and scored outside it.

A Task is what the policy is shown (``prompt``, ``entry_point``; see ``Task.public``) plus what it never
sees: the hidden ``tests``, optional ``setup`` code run after the candidate and before the tests, and a
``reference`` solution. Adapters read HumanEval-style (``prompt``/``test`` with ``check(candidate)``) and
MBPP-style (``text``/``code``/``test_list``) JSONL files, and a native format.

Scoring the candidate cannot fake (see ``_runner.py``): each test ``assert <expr> == <literal>`` (all but 3
of MBPP's 2,922 tests, and HumanEval's per-assert checks) becomes a "value" test: the sandbox reports the
value of ``<expr>``, normalised to plain data, and the harness compares it with the literal, which never
enters the sandbox. Other tests run in-process as "check" tests, with every ``==`` in an assert rewritten
to a comparison that a forged ``__eq__`` cannot satisfy. All report lines carry a per-run nonce sent on
stdin, and a pass needs exit code 0, the runner's final line, and every test passed. Limit: candidate
code that deliberately reads the runner's memory (frames, gc) can learn the nonce and forge a "check"
test's "ok" line; it cannot forge a "value" test, whose expected value is not in its process.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import re
import secrets
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, get_args

from rewardgauge.errors import InputError
from rewardgauge.io import iter_jsonl
from rewardgauge.sandbox.core import Limits, Sandbox

TaskFormat = Literal["auto", "native", "humaneval", "mbpp"]
TASK_FORMATS: tuple[str, ...] = get_args(TaskFormat)


@dataclass(frozen=True)
class _Check:
    """One hidden test as the runner executes it. ``expected`` stays in the harness."""

    mode: str  # "value": the runner reports eval(code); "check": the runner exec()s code
    code: str
    expected: Any = None
    negate: bool = False  # value test from ``!=``


@dataclass
class Task:
    """A programming task with hidden tests.

    prompt:      what the policy is shown.
    entry_point: the function the tests call (also bound as ``candidate`` for HumanEval-style tests).
    tests:       hidden test snippets; each raises (an assert) on failure.
    setup:       trusted code run after the candidate and before the tests (imports, fixtures).
    prefix:      code a completion continues (HumanEval: the prompt); the program is prefix + completion.
    reference:   a known-good solution (a full program), when the source has one.
    """

    task_id: str
    prompt: str
    entry_point: str
    tests: list[str]
    setup: str = ""
    prefix: str = ""
    reference: str | None = None
    source: str = "native"

    def public(self) -> dict[str, str]:
        """Everything the policy may see. The hidden tests are never in it."""
        return {"task_id": self.task_id, "prompt": self.prompt, "entry_point": self.entry_point}

    @functools.cached_property
    def checks(self) -> tuple[_Check, ...]:
        return tuple(_compile_test(t) for t in self.tests)

    @functools.cached_property
    def checked_setup(self) -> str:
        return _harden_asserts(self.setup)


# ------------------------------------------------------------------------------------- test compilation

def _parse(code: str) -> ast.Module:
    """ast.parse without the warnings old dataset code raises (invalid escapes such as "\\d" in a str)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (SyntaxWarning, DeprecationWarning))
        return ast.parse(code)


def _literal(node: ast.expr) -> tuple[bool, Any]:
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def _compile_test(test: str) -> _Check:
    """A value test for ``assert <expr> ==/!= <literal>`` (either side), else a hardened check test."""
    try:
        tree = _parse(test)
    except SyntaxError:
        return _Check("check", test)
    if len(tree.body) == 1 and isinstance(stmt := tree.body[0], ast.Assert) and isinstance(stmt.test, ast.Compare):
        cmp = stmt.test
        if len(cmp.ops) == 1 and isinstance(cmp.ops[0], (ast.Eq, ast.NotEq)):
            left, right = cmp.left, cmp.comparators[0]
            (l_lit, l_val), (r_lit, r_val) = _literal(left), _literal(right)
            if l_lit != r_lit:
                expr, expected = (right, l_val) if l_lit else (left, r_val)
                return _Check("value", ast.unparse(expr), expected, isinstance(cmp.ops[0], ast.NotEq))
    return _Check("check", _harden_asserts(test))


class _HardenEq(ast.NodeTransformer):
    """``assert a == b`` -> ``assert __rl_eq__(a, b)`` (and ``!=`` -> ``not __rl_eq__``), anywhere."""

    def visit_Assert(self, node: ast.Assert) -> ast.Assert:
        self.generic_visit(node)
        cmp = node.test
        if isinstance(cmp, ast.Compare) and len(cmp.ops) == 1 and isinstance(cmp.ops[0], (ast.Eq, ast.NotEq)):
            call: ast.expr = ast.Call(ast.Name("__rl_eq__", ast.Load()), [cmp.left, cmp.comparators[0]], [])
            if isinstance(cmp.ops[0], ast.NotEq):
                call = ast.UnaryOp(ast.Not(), call)
            node.test = ast.copy_location(call, cmp)
        return node


def _harden_asserts(code: str) -> str:
    if "assert" not in code:
        return code
    try:
        tree = _parse(code)
    except SyntaxError:
        return code
    return ast.unparse(ast.fix_missing_locations(_HardenEq().visit(tree)))


# ------------------------------------------------------------------------------------ program and score

_RUNNER = (Path(__file__).with_name("_runner.py")).read_text(encoding="utf-8")


def build_program(task: Task, code: str) -> str:
    """The script the sandbox runs: the runner, then a call with the candidate ``code`` and the tests."""
    tests = [(c.mode, c.code) for c in task.checks]
    return f"{_RUNNER}\n_rl_main({task.checked_setup!r}, {code!r}, {tests!r}, {task.entry_point!r})\n"


def _decode(obj: Any) -> Any:
    """Inverse of the runner's ``_rl_encode``; raises ValueError/TypeError/KeyError on anything else."""
    tag = obj[0]
    if tag == "N":
        return None
    if tag == "B":
        return bool(obj[1])
    if tag == "I":
        return int(obj[1], 16)
    if tag == "F":
        return float.fromhex(obj[1])
    if tag == "C":
        return complex(float.fromhex(obj[1]), float.fromhex(obj[2]))
    if tag == "S":
        return bytes.fromhex(obj[1]).decode("utf-8", "surrogatepass")
    if tag == "Y":
        return bytes.fromhex(obj[1])
    if tag == "R":
        return range(int(obj[1], 16), int(obj[2], 16), int(obj[3], 16))
    if tag == "L":
        return [_decode(x) for x in obj[1]]
    if tag == "T":
        return tuple(_decode(x) for x in obj[1])
    if tag == "E":
        return frozenset(_decode(x) for x in obj[1])
    if tag == "D":
        return {_decode(k): _decode(v) for k, v in obj[1]}
    raise ValueError(f"unknown tag {tag!r}")


def _value_passes(check: _Check, text: str) -> tuple[bool, str | None]:
    try:
        value = _decode(json.loads(text))
    except (ValueError, TypeError, KeyError, IndexError, RecursionError):
        return False, "malformed value report"
    equal = value == check.expected  # both sides are exact builtin types here
    if equal != check.negate:
        return True, None
    shown = repr(value)
    return False, f"got {shown[:200]}{'...' if len(shown) > 200 else ''}"


@dataclass
class TaskOutcome:
    """How one completion did on one task."""

    task_id: str
    passed: bool
    tests_passed: int
    tests_total: int
    status: str
    backend: str
    duration_s: float
    error: str | None = None  # the first failure: candidate error, failing test, or the run's status

    @property
    def fraction(self) -> float:
        return self.tests_passed / self.tests_total if self.tests_total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "passed": self.passed, "tests_passed": self.tests_passed,
                "tests_total": self.tests_total, "status": self.status, "backend": self.backend,
                "duration_s": round(self.duration_s, 4), "error": self.error}


_LINE = re.compile(r"^([0-9a-f]{32}) (\S+)(?: (.*))?$")


def score_run(task: Task, nonce: str, stdout: str, status: str) -> tuple[int, bool, str | None]:
    """(tests passed, finished, first error) from the runner's report lines in ``stdout``.

    Only lines carrying this run's nonce count; a test reported twice counts as failed.
    """
    results: dict[int, tuple[bool, str | None]] = {}
    seen_twice: set[int] = set()
    finished, error = False, None
    for line in stdout.split("\n"):
        m = _LINE.match(line)
        if m is None or m.group(1) != nonce:
            continue
        what, rest = m.group(2), m.group(3) or ""
        if what == "done":
            finished = True
        elif what in ("candidate_error", "setup_error"):
            error = error or f"{what.replace('_', ' ')}: {rest}"
        elif what.isdigit() and int(what) < len(task.checks):
            i = int(what)
            kind, _, payload = rest.partition(" ")
            check = task.checks[i]
            if kind == "value" and check.mode == "value":
                result = _value_passes(check, payload)
            elif kind == "ok" and check.mode == "check":
                result = (True, None)
            else:
                result = (False, payload if kind == "fail" else f"unexpected report {kind!r}")
            if i in results:
                seen_twice.add(i)
            results[i] = result
    passed = 0
    for i in range(len(task.checks)):
        ok, why = results.get(i, (False, "not reported"))
        if i in seen_twice:
            ok, why = False, "reported twice"
        passed += ok
        if not ok and error is None and i in results:
            error = f"test {i}: {why}"
    if error is None and not finished:
        error = f"the program ended before the tests finished (status {status})"
    return passed, finished, error


def run_tasks(sandbox: Sandbox, jobs: Sequence[tuple[Task, str]], limits: Limits | None = None,
              workers: int | None = None, deadline: float | None = None) -> list[TaskOutcome]:
    """Run each (task, program code) in the sandbox on a pool of threads and score it.

    deadline: a ``time.monotonic()`` time; a job that would start after it is not run (status
    "budget_exhausted"), and a job's timeout is cut to the time left.
    """
    limits = limits or sandbox.limits

    def one(job: tuple[Task, str]) -> TaskOutcome:
        task, code = job
        job_limits = limits
        if deadline is not None:
            left = deadline - time.monotonic()
            if left < 0.05:
                return TaskOutcome(task.task_id, False, 0, len(task.tests), "budget_exhausted",
                                   sandbox.backend_name, 0.0, "time budget exhausted before the run")
            if left < limits.timeout_s:
                job_limits = replace(limits, timeout_s=left)
        nonce = secrets.token_hex(16)
        res = sandbox.run(build_program(task, code), stdin=nonce.encode(), limits=job_limits)
        passed, finished, error = score_run(task, nonce, res.stdout, res.status)
        total = len(task.checks)
        all_passed = res.status == "ok" and finished and total > 0 and passed == total
        if not all_passed and error is None:
            error = f"exit status {res.status}" + (f": {res.stderr.strip()[-200:]}" if res.stderr.strip() else "")
        return TaskOutcome(task.task_id, all_passed, passed, total, res.status, res.backend, res.duration_s,
                           None if all_passed else error)

    if len(jobs) == 1:
        return [one(jobs[0])]
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return list(pool.map(one, jobs))


# ------------------------------------------------------------------------------------------- adapters

def _require(obj: dict, key: str, kind: type, path, line) -> Any:
    if key not in obj:
        raise InputError("missing field", path=path, line=line, field=key)
    value = obj[key]
    if kind is str and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # task ids are often numbers (MBPP)
    if not isinstance(value, kind):
        raise InputError(f"expected {kind.__name__}, got {type(value).__name__}", path=path, line=line, field=key)
    return value


def _str_list(obj: dict, key: str, path, line) -> list[str]:
    value = _require(obj, key, list, path, line)
    if not value or not all(isinstance(t, str) for t in value):
        raise InputError("expected a non-empty list of strings", path=path, line=line, field=key)
    return value


def from_native(obj: dict, path=None, line=None) -> Task:
    return Task(task_id=_require(obj, "task_id", str, path, line), prompt=_require(obj, "prompt", str, path, line),
                entry_point=_require(obj, "entry_point", str, path, line), tests=_str_list(obj, "tests", path, line),
                setup=obj.get("setup") or "", prefix=obj.get("prefix") or "", reference=obj.get("reference"),
                source=obj.get("source") or "native")


def from_humaneval(obj: dict, path=None, line=None) -> Task:
    """HumanEval: ``test`` defines ``check(candidate)``. When its body is only asserts, each assert becomes
    its own hidden test (so rewards can count them), with the rest of ``test`` as setup; otherwise the whole
    ``check(candidate)`` call is one test. Completions continue the prompt."""
    prompt = _require(obj, "prompt", str, path, line)
    entry = _require(obj, "entry_point", str, path, line)
    test_src = _require(obj, "test", str, path, line)
    setup, tests = test_src, ["check(candidate)"]
    try:
        module = _parse(test_src)
    except SyntaxError as e:
        raise InputError(f"test code does not parse: {e.msg}", path=path, line=line, field="test") from None
    check = next((n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "check"), None)
    if check is None:
        raise InputError("test code defines no check(candidate) function", path=path, line=line, field="test")
    body = [n for n in check.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    param = check.args.args[0].arg if check.args.args else "candidate"
    if body and all(isinstance(n, ast.Assert) for n in body):
        rest = [n for n in module.body if n is not check]
        setup = ast.unparse(ast.Module(rest, type_ignores=[]))
        if param != "candidate":
            setup += f"\n{param} = candidate"
        tests = [ast.unparse(n) for n in body]
    return Task(task_id=_require(obj, "task_id", str, path, line), prompt=prompt, entry_point=entry, tests=tests,
                setup=setup, prefix=prompt, reference=prompt + obj["canonical_solution"]
                if isinstance(obj.get("canonical_solution"), str) else None, source="humaneval")


def _mbpp_entry_point(code: str, tests: list[str]) -> tuple[str, ast.stmt | None]:
    """(name the tests call that the reference defines, that definition) — else (the first called name, None)."""
    defined: dict[str, ast.stmt] = {}
    try:
        for node in _parse(code).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined[node.name] = node
    except SyntaxError:
        pass
    first_call = None
    for test in tests:
        try:
            nodes = ast.walk(_parse(test))
        except SyntaxError:
            continue
        for node in nodes:
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                if node.func.id in defined:
                    return node.func.id, defined[node.func.id]
                first_call = first_call or node.func.id
    if first_call is None:
        raise ValueError("the tests call no function")
    return first_call, None


def _mbpp_code_prompt(code: str, definition: ast.stmt, text: str) -> str:
    """The reference's imports, then its entry point's ``def`` line with the task text as docstring: code that
    a function body continues (as a HumanEval prompt does). Nothing else of the reference is shown."""
    imports = [n for n in _parse(code).body if isinstance(n, (ast.Import, ast.ImportFrom))]
    stub = ast.Module(body=[*imports, definition.__class__(**{
        **{f: getattr(definition, f) for f in definition._fields},
        "body": [ast.Expr(ast.Constant(" ".join(text.split())))], "decorator_list": []})], type_ignores=[])
    return ast.unparse(ast.fix_missing_locations(stub)) + "\n"


def from_mbpp(obj: dict, path=None, line=None, include_challenge: bool = False) -> Task:
    """MBPP: the prompt is Python code, the reference's imports and its entry point's ``def`` line with the task
    text as docstring, and a completion continues it (a body, as for HumanEval; a full program written from
    column 0 also works, as it redefines the function). The tests are NOT shown, unlike MBPP's few-shot prompt,
    because here they are the hidden tests. When the reference defines no function the tests call, the prompt
    is the text and the function's name, and completions are full programs."""
    text = _require(obj, "text", str, path, line)
    code = _require(obj, "code", str, path, line)
    tests = list(_str_list(obj, "test_list", path, line))
    if include_challenge:
        tests += [t for t in obj.get("challenge_test_list") or [] if isinstance(t, str)]
    try:
        entry, definition = _mbpp_entry_point(code, tests)
    except ValueError as e:
        raise InputError(str(e), path=path, line=line, field="test_list") from None
    if definition is not None:
        prompt = prefix = _mbpp_code_prompt(code, definition, text)
    else:
        prompt, prefix = text.strip() + f"\nThe function is called {entry}.\n", ""
    return Task(task_id=_require(obj, "task_id", str, path, line), prompt=prompt, entry_point=entry, tests=tests,
                setup=obj.get("test_setup_code") or "", prefix=prefix, reference=code, source="mbpp")


_ADAPTERS = {"native": from_native, "humaneval": from_humaneval, "mbpp": from_mbpp}


def detect_format(obj: dict) -> str:
    if "test_list" in obj and "text" in obj:
        return "mbpp"
    if "test" in obj and "entry_point" in obj:
        return "humaneval"
    if "tests" in obj:
        return "native"
    raise ValueError("unknown task format: expected MBPP (text, test_list), HumanEval (prompt, test, "
                     "entry_point) or native (task_id, prompt, entry_point, tests) fields")


def load_tasks(path: str | os.PathLike, format: str = "auto") -> list[Task]:
    """Read tasks from JSONL; ``format`` is detected from the first record unless given."""
    if format not in TASK_FORMATS:
        raise InputError(f"unknown task format {format!r} (known: {', '.join(TASK_FORMATS)})")
    tasks: list[Task] = []
    seen: set[str] = set()
    for line, obj in iter_jsonl(path):
        if format == "auto":
            try:
                format = detect_format(obj)
            except ValueError as e:
                raise InputError(str(e), path=path, line=line) from None
        task = _ADAPTERS[format](obj, path, line)
        if task.task_id in seen:
            raise InputError(f"duplicate task_id {task.task_id!r}", path=path, line=line, field="task_id")
        seen.add(task.task_id)
        tasks.append(task)
    if not tasks:
        raise InputError("no tasks in file", path=path)
    return tasks


# ------------------------------------------------------------------------------------------ completions

_FENCE = re.compile(r"```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)


def extract_code(text: str) -> str:
    """The code in a model response: the first fenced block tagged python (or untagged), else the text."""
    blocks = _FENCE.findall(text)
    if not blocks:
        return text
    for lang, body in blocks:
        if lang.lower() in ("python", "py", "python3", ""):
            return body
    return blocks[0][1]


def program_for(task: Task, completion: str, full_program: bool = False, extract: bool = True) -> str:
    """The program for one completion: ``prefix + completion`` (HumanEval continues the prompt), or the
    completion alone when it is a full program (``full_program``, or a task without prefix)."""
    code = extract_code(completion) if extract else completion
    return code if full_program else task.prefix + code


def load_completions(path: str | os.PathLike, tasks: dict[str, Task], extract: bool = True
                     ) -> list[tuple[Task, str]]:
    """(task, program) per line of a completions JSONL: ``{"task_id", "completion"}`` (continues the task's
    prefix) or ``{"task_id", "solution"}`` (a full program)."""
    jobs = []
    for line, obj in iter_jsonl(path):
        task_id = _require(obj, "task_id", str, path, line)
        if task_id not in tasks:
            raise InputError(f"unknown task_id {task_id!r}", path=path, line=line, field="task_id")
        if isinstance(obj.get("solution"), str):
            jobs.append((tasks[task_id], program_for(tasks[task_id], obj["solution"], True, extract)))
        elif isinstance(obj.get("completion"), str):
            jobs.append((tasks[task_id], program_for(tasks[task_id], obj["completion"], False, extract)))
        else:
            raise InputError("expected a string 'completion' or 'solution'", path=path, line=line, field="completion")
    if not jobs:
        raise InputError("no completions in file", path=path)
    return jobs


# ------------------------------------------------------------------------------------------ controls

def stub_body(code: str, entry_point: str) -> str:
    """``code`` with the body of function ``entry_point`` replaced by ``return None`` (a negative control)."""
    tree = _parse(code)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry_point:
            node.body = [ast.Return(ast.Constant(None))]
            return ast.unparse(ast.fix_missing_locations(tree))
    raise ValueError(f"no function {entry_point!r} in the code")
