"""Task formats, scoring that the candidate cannot fake, pass@k, and the ``tasks`` / ``sandbox`` commands."""

import json
import math
from pathlib import Path

import pytest

from rewardgauge.cli import main
from rewardgauge.errors import InputError
from rewardgauge.sandbox import Limits, Sandbox
from rewardgauge.sandbox.evaluate import evaluate, pass_at_k
from rewardgauge.sandbox.tasks import (
    Task,
    extract_code,
    from_humaneval,
    from_mbpp,
    load_completions,
    load_tasks,
    run_tasks,
    stub_body,
)

MBPP = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "mbpp" / "mbpp.jsonl"

MBPP_ROW = {"task_id": 7, "text": "Write a function to add two numbers.", "test_setup_code": "",
            "code": "def add_nums(a, b):\r\n    return a + b", "challenge_test_list": ["assert add_nums(0, 0) == 0"],
            "test_list": ["assert add_nums(1, 2) == 3", "assert add_nums(2, 2) == 4", "assert 7 == add_nums(3, 4)"]}
HUMANEVAL_ROW = {
    "task_id": "HumanEval/0", "entry_point": "incr_list",
    "prompt": 'def incr_list(l: list):\n    """Return list with elements incremented by 1."""\n',
    "canonical_solution": "    return [e + 1 for e in l]\n",
    "test": "METADATA = {'author': 'x'}\n\ndef check(candidate):\n    assert candidate([]) == []\n"
            "    assert candidate([3, 2, 1]) == [4, 3, 2]\n    assert candidate([5]) != [5]\n"}


@pytest.fixture(scope="module")
def sandbox():
    return Sandbox(limits=Limits(timeout_s=3.0))


def _task(tests, entry="f", setup=""):
    return Task(task_id="t", prompt="implement f", entry_point=entry, tests=tests, setup=setup)


def _run(sandbox, task, code):
    return run_tasks(sandbox, [(task, code)])[0]


def test_pass_at_k_matches_the_combinatorial_definition():
    for n, c, k in [(10, 0, 1), (10, 10, 5), (5, 2, 1), (10, 3, 5), (20, 7, 10), (3, 1, 3)]:
        exact = 1.0 - math.comb(n - c, k) / math.comb(n, k)
        assert pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12)
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(3, 1, 5)


def test_mbpp_adapter_hides_the_tests_from_the_prompt():
    task = from_mbpp(MBPP_ROW)
    assert task.task_id == "7" and task.entry_point == "add_nums" and task.source == "mbpp"
    assert task.prompt == 'def add_nums(a, b):\n    """Write a function to add two numbers."""\n'
    assert task.prefix == task.prompt  # a completion continues the prompt, as in HumanEval
    assert task.public() == {"task_id": "7", "prompt": task.prompt, "entry_point": "add_nums"}
    assert "assert" not in json.dumps(task.public())
    # Every MBPP-style assert compares with a literal: the expected value stays in the harness.
    assert [(c.mode, c.code, c.expected) for c in task.checks] == [
        ("value", "add_nums(1, 2)", 3), ("value", "add_nums(2, 2)", 4), ("value", "add_nums(3, 4)", 7)]
    assert len(from_mbpp(MBPP_ROW, include_challenge=True).tests) == 4


MBPP_IMPORT_ROW = {"task_id": 9, "text": "Write a python function to find the integer square root.",
                   "code": "import math\r\nfrom functools import reduce\r\nLIMIT = 3\r\n"
                           "def isqrt(n: int, *, floor=True) -> int:\r\n  return math.isqrt(n)",
                   "test_list": ["assert isqrt(10) == 3", "assert isqrt(16) == 4"], "test_setup_code": ""}


def test_mbpp_prompt_is_code_that_a_body_continues(tmp_path, capsys):
    """tasks prompts gives code (imports, the def line, the text as docstring); tasks eval takes a body-only
    completion (continues the prompt), a full program as 'solution', and a full program as 'completion'."""
    task = from_mbpp(MBPP_IMPORT_ROW)
    assert task.prompt == ("import math\nfrom functools import reduce\n\n"
                           "def isqrt(n: int, *, floor=True) -> int:\n"
                           '    """Write a python function to find the integer square root."""\n')
    assert "LIMIT" not in task.prompt and "return" not in task.prompt  # nothing of the reference's code
    tasks = tmp_path / "mbpp.jsonl"
    tasks.write_text(json.dumps(MBPP_IMPORT_ROW) + "\n")
    out = tmp_path / "prompts.jsonl"
    assert main(["tasks", "prompts", "--tasks", str(tasks), "--out", str(out)]) == 0
    prompt = json.loads(out.read_text())["prompt"]
    body = "    return math.isqrt(n)\n"  # what a model continuing the prompt writes: uses the shown import
    comp = tmp_path / "samples.jsonl"
    comp.write_text("".join(json.dumps(r) + "\n" for r in [
        {"task_id": 9, "completion": body},
        {"task_id": 9, "solution": "import math\ndef isqrt(n, floor=True):\n    return math.isqrt(n)\n"},
        {"task_id": 9, "completion": "def isqrt(n, floor=True):\n    return int(n ** 0.5)\n"},
        {"task_id": 9, "completion": "    return n // 2\n"},  # wrong: fails its tests
        {"task_id": 9, "solution": body}]))  # a body alone is no program
    assert main(["tasks", "eval", "--tasks", str(tasks), "--completions", str(comp), "-k", "1", "--timeout",
                 "5", "--workers", "1"]) == 0
    capsys.readouterr()
    samples = json.loads((tmp_path / "samples.results.jsonl").read_text())["samples"]
    assert [s["passed"] for s in samples] == [True, True, True, False, False]
    compile(prompt + body, "prompt+body", "exec")  # the prompt as written is what the body continues


def test_humaneval_adapter_splits_check_into_asserts(sandbox):
    task = from_humaneval(HUMANEVAL_ROW)
    assert task.tests == ["assert candidate([]) == []", "assert candidate([3, 2, 1]) == [4, 3, 2]",
                          "assert candidate([5]) != [5]"]
    assert "METADATA" in task.setup and task.prefix == HUMANEVAL_ROW["prompt"]
    assert task.checks[2].negate and "assert" not in json.dumps(task.public())
    out = _run(sandbox, task, task.prefix + HUMANEVAL_ROW["canonical_solution"])
    assert out.passed and (out.tests_passed, out.tests_total) == (3, 3)
    # A check body that is not only asserts stays one test: check(candidate).
    row = dict(HUMANEVAL_ROW, test="def check(candidate):\n    for i in range(3):\n        assert candidate([i]) == [i + 1]\n")
    looped = from_humaneval(row)
    assert looped.tests == ["check(candidate)"]
    assert _run(sandbox, looped, looped.reference).passed
    assert not _run(sandbox, looped, looped.prefix + "    return l\n").passed


def test_loaders_name_file_line_and_field(tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps({"task_id": "a", "prompt": "p", "entry_point": "f", "tests": ["assert f()"]}) + "\n"
                    + json.dumps({"task_id": "b", "prompt": "p", "tests": ["assert f()"]}) + "\n")
    with pytest.raises(InputError, match=r"tasks.jsonl:2: field 'entry_point': missing field"):
        load_tasks(path)
    path.write_text(json.dumps(MBPP_ROW) + "\n" + json.dumps(MBPP_ROW) + "\n")
    with pytest.raises(InputError, match=r":2: field 'task_id': duplicate task_id '7'"):
        load_tasks(path)
    tasks = {"7": from_mbpp(MBPP_ROW)}
    comp = tmp_path / "c.jsonl"
    comp.write_text(json.dumps({"task_id": 7, "solution": "x"}) + "\n" + json.dumps({"task_id": 8, "solution": "x"}))
    with pytest.raises(InputError, match=r"c.jsonl:2: field 'task_id': unknown task_id '8'"):
        load_completions(comp, tasks)
    comp.write_text(json.dumps({"task_id": 7, "text": "x"}))
    with pytest.raises(InputError, match=r":1: field 'completion': expected a string"):
        load_completions(comp, tasks)


def test_reference_passes_and_partial_answers_count_tests(sandbox):
    task = from_mbpp(MBPP_ROW)
    assert _run(sandbox, task, task.reference).passed
    partial = _run(sandbox, task, "def add_nums(a, b):\n    return 4 if a == 2 else 3")
    assert not partial.passed and (partial.tests_passed, partial.fraction) == (2, 2 / 3)
    assert partial.error == "test 2: got 3"
    stub = _run(sandbox, task, stub_body(task.reference, "add_nums"))
    assert not stub.passed and stub.tests_passed == 0


@pytest.mark.parametrize("name, code", [
    ("os._exit(0) before the tests", "import os\nos._exit(0)\ndef f(x): return x"),
    ("sys.exit(0) at import", "import sys\nsys.exit(0)"),
    ("exit(0) from inside the tested function", "import sys\ndef f(x): sys.exit(0)"),
    ("an object whose __eq__ is always True", "class A:\n    def __eq__(s, o): return True\n    __hash__ = None\n"
                                              "def f(x): return A()"),
    ("an int subclass lying about equality", "class I(int):\n    def __eq__(s, o): return True\n    __hash__ = int.__hash__\n"
                                             "def f(x): return I(0)"),
    ("a str subclass lying about equality", "class S(str):\n    def __eq__(s, o): return True\n    __hash__ = str.__hash__\n"
                                            "def f(x): return S('no')"),
    ("printing guessed report lines", "import os\nfor i in range(3):\n    os.write(1, b'\\n%s %d ok\\n' % (b'0' * 32, i))\n"
                                      "def f(x): return None"),
    ("reading the nonce from stdin or the program", "import sys, re\nsecret = sys.stdin.read() + open(__file__).read()\n"
                                                    "n = re.findall(r'\\b[0-9a-f]{32}\\b', secret)\n"
                                                    "print(n)\ndef f(x): return None"),
    ("rebinding builtins the checker uses", "import builtins\nbuiltins.type = lambda o: int\nbuiltins.isinstance = "
                                            "lambda *a: True\nbuiltins.compile = lambda *a, **k: compile('None', '', 'eval')\n"
                                            "def f(x): return None"),
])
def test_scoring_cannot_be_faked(sandbox, name, code):
    task = _task(["assert f(1) == [1, 2]", "assert f(2) == {'a': (1.5, None)}", "assert f(3) == 'yes'"])
    out = _run(sandbox, task, code)
    assert not out.passed and out.tests_passed == 0, (name, out)


def test_in_process_checks_reject_forged_equality(sandbox):
    """Tests that are not `expr == literal` run inside, with `==` in asserts rewritten."""
    task = _task(["assert f(1) == g(1)", "assert g(2) == f(2)"], setup="def g(x): return [x, x]")
    assert [c.mode for c in task.checks] == ["check", "check"] and "__rl_eq__" in task.checks[0].code
    assert _run(sandbox, task, "def f(x): return [x, x]").passed
    forged = "class A:\n    def __eq__(s, o): return True\n    def __ne__(s, o): return True\ndef f(x): return A()"
    assert _run(sandbox, task, forged).tests_passed == 0


def test_values_compare_like_python_for_plain_data(sandbox):
    task = _task(["assert f(0) == {'a': 2, 'b': 1}", "assert f(1) == {3, 4}", "assert f(2) == (1, [2.5, None])",
                  "assert f(3) == 'h\u00e9\\n'", "assert f(4) == 1267650600228229401496703205376",
                  "assert f(5) == 1.0", "assert f(6) == b'\\x00\\xff'", "assert f(7) == float('inf')"])
    assert [c.mode for c in task.checks] == ["value"] * 7 + ["check"]
    code = """
from collections import Counter, namedtuple
P = namedtuple("P", "a b")
def f(i):
    return [Counter("aab"), frozenset({4, 3}), P(1, [2.5, None]), "h\\u00e9\\n", 2 ** 100, 1, bytearray(b"\\x00\\xff"),
            float("inf")][i]
"""
    out = _run(sandbox, task, code)
    assert out.passed, out
    assert not _run(sandbox, task, code.replace("P(1, [2.5, None])", "[1, [2.5, None]]")).passed


def test_extract_code_and_completion_programs(tmp_path):
    assert extract_code("Here:\n```python\ndef f():\n    return 1\n```\nDone") == "def f():\n    return 1\n"
    assert extract_code("```\nx = 1\n```") == "x = 1\n"
    assert extract_code("```js\nlet x\n```") == "let x\n"
    assert extract_code("def f(): pass") == "def f(): pass"
    assert extract_code("```python\nunterminated = 1\n") == "unterminated = 1\n"
    tasks = {"HumanEval/0": from_humaneval(HUMANEVAL_ROW)}
    comp = tmp_path / "c.jsonl"
    comp.write_text(json.dumps({"task_id": "HumanEval/0", "completion": "    return l\n"}) + "\n"
                    + json.dumps({"task_id": "HumanEval/0", "solution": "def incr_list(l): return l"}) + "\n")
    (_, first), (_, second) = load_completions(comp, tasks)
    assert first == HUMANEVAL_ROW["prompt"] + "    return l\n" and second == "def incr_list(l): return l"


def test_evaluate_reports_pass_at_k_per_task(sandbox):
    a = from_mbpp(MBPP_ROW)
    b = Task(task_id="b", prompt="square", entry_point="sq", tests=["assert sq(3) == 9"])
    jobs = [(a, a.reference), (a, "def add_nums(a, b): return 0"), (a, a.reference),
            (b, "def sq(x): return x * x"), (b, "def sq(x): return x + x"), (b, "while True: pass")]
    rows, summary = evaluate(sandbox, jobs, ks=[1, 2, 5], limits=Limits(timeout_s=1.0), workers=2)
    assert [(r["task_id"], r["n"], r["c"]) for r in rows] == [("7", 3, 2), ("b", 3, 1)]
    assert rows[0]["pass@1"] == pytest.approx(2 / 3) and rows[1]["pass@2"] == pytest.approx(2 / 3)
    assert summary["pass@1"] == pytest.approx(0.5) and summary["ks_skipped"] == [5]
    assert summary["statuses"] == {"ok": 5, "timeout": 1} and summary["samples"] == 6
    assert rows[1]["samples"][2]["status"] == "timeout" and rows[1]["samples"][0]["passed"]


def test_cli_tasks_eval_and_prompts(tmp_path, capsys):
    tasks = tmp_path / "mbpp.jsonl"
    tasks.write_text(json.dumps(MBPP_ROW) + "\n" + json.dumps(dict(MBPP_ROW, task_id=8)) + "\n")
    comp = tmp_path / "samples.jsonl"
    comp.write_text("".join(json.dumps(r) + "\n" for r in [
        {"task_id": 7, "solution": "```python\n" + MBPP_ROW["code"] + "\n```"},
        {"task_id": 7, "solution": "import os\nos._exit(0)"},
        {"task_id": 8, "solution": MBPP_ROW["code"]}, {"task_id": 8, "solution": MBPP_ROW["code"]}]))
    assert main(["tasks", "eval", "--tasks", str(tasks), "--completions", str(comp), "-k", "1,2", "--workers", "2",
                 "--timeout", "3"]) == 0
    printed = capsys.readouterr().out
    assert "pass@1" in printed and "0.7500" in printed and "pass@2" in printed and "status ok" in printed
    rows = [json.loads(line) for line in (tmp_path / "samples.results.jsonl").read_text().splitlines()]
    assert [(r["task_id"], r["n"], r["c"], r["pass@1"]) for r in rows] == [("7", 2, 1, 0.5), ("8", 2, 2, 1.0)]
    assert rows[0]["samples"][1]["error"].startswith("the program ended before the tests finished")

    out = tmp_path / "prompts.jsonl"
    assert main(["tasks", "prompts", "--tasks", str(tasks), "--out", str(out)]) == 0
    prompts = [json.loads(line) for line in out.read_text().splitlines()]
    assert prompts[0] == {"task_id": "7", "prompt": from_mbpp(MBPP_ROW).prompt, "entry_point": "add_nums"}

    comp.write_text(json.dumps({"task_id": 7, "solution": "x"}) + "\n")
    assert main(["tasks", "eval", "--tasks", str(tasks), "--completions", str(comp)]) == 2
    assert "1 of 2 tasks have no completions (first: '8')" in capsys.readouterr().err
    assert main(["tasks", "eval", "--tasks", str(tasks), "--completions", str(comp), "--allow-incomplete",
                 "--out", str(tmp_path / "r.jsonl"), "-k", "1"]) == 0


def test_cli_sandbox_probe_and_run(tmp_path, capsys):
    assert main(["sandbox", "probe"]) == 0
    assert "chosen: " in capsys.readouterr().out
    prog = tmp_path / "p.py"
    prog.write_text("print('hi')\nraise SystemExit(4)\n")
    assert main(["sandbox", "run", str(prog), "--timeout", "3"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "hi\n" and "status=error exit_code=4" in captured.err
    assert main(["sandbox", "run", str(prog), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["exit_code"] == 4
    assert main(["sandbox", "run", str(tmp_path / "missing.py")]) == 2


def test_mbpp_subset_references_pass_and_stubs_fail(sandbox):
    if not MBPP.is_file():
        pytest.skip(f"shared MBPP data not found at {MBPP}")
    tasks = load_tasks(MBPP, "mbpp")[:40]
    assert all(t.tests[0] not in t.prompt for t in tasks)
    refs = run_tasks(sandbox, [(t, t.reference) for t in tasks], workers=2)
    assert [o.task_id for o in refs if not o.passed] == []
    stubs = run_tasks(sandbox, [(t, stub_body(t.reference, t.entry_point)) for t in tasks], workers=2)
    assert [o.task_id for o in stubs if o.passed] == []
