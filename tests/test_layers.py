"""The layers of DESIGN.md section 3, as import-linter contracts in pyproject.toml, hold for the package; and
they bite: a copy of the package with one forbidden import fails them."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

importlinter = pytest.importorskip("importlinter", reason="import-linter is in the dev extra")

import rewardgauge  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"


def _lint(package_parent: Path) -> subprocess.CompletedProcess:
    """lint-imports with pyproject.toml's contracts, on the rewardgauge found first under package_parent."""
    env = {**os.environ, "PYTHONPATH": str(package_parent), "COLUMNS": "250"}  # one line per contract
    code = ("import sys; from importlinter.cli import lint_imports; "
            f"sys.exit(lint_imports(config_filename={str(PYPROJECT)!r}, no_cache=True, no_logo=True))")
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=package_parent, capture_output=True,
                          text=True, timeout=120)


def test_contracts_hold():
    result = _lint(Path(rewardgauge.__file__).parents[1])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout and "Contracts: " in result.stdout


@pytest.mark.parametrize("module,line,contract", [
    # the violation this wave removed: rewards reaching up into the lab for the gold reward
    ("rewards/loading.py", "from rewardgauge.lab import gold", "Layers"),
    # the audit reading lab internals
    ("audit/probes.py", "from rewardgauge.lab import language", "Layers"),
    ("data/records.py", "import torch", "data imports no torch"),
    ("report/charts.py", "from rewardgauge.data import records", "report -> io only"),
    # the review queue is records and a web page: no models
    ("review/queue.py", "from rewardgauge.rewards import base", "review -> data, io"),
    # a library module importing a command module (the CLI is on top)
    ("rewards/evaluation.py", "from rewardgauge.rewards import commands", "The CLI on top"),
])
def test_contracts_catch_a_forbidden_import(tmp_path, module, line, contract):
    copy = tmp_path / "rewardgauge"
    shutil.copytree(Path(rewardgauge.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / module, "a") as f:
        f.write(f"\n{line}  # injected by the test\n")
    result = _lint(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    broken = [ln for ln in result.stdout.splitlines() if " BROKEN" in ln]
    assert len(broken) == 1 and broken[0].startswith(contract), result.stdout
