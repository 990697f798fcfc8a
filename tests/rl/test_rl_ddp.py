import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("ddp_worker.py")


@pytest.mark.distributed
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["rl", "dpo"])
def test_two_cpu_processes_train_one_model(lab_rl, tmp_path, kind):
    out = tmp_path / kind
    data = lab_rl["prompts"] if kind == "rl" else lab_rl["pairs"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(WORKER), kind, str(out), str(data), str(lab_rl["policy"])],
        env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2] and [r["steps"] for r in ranks] == [3, 3]
    assert ranks[0]["sha256"] == ranks[1]["sha256"]  # DDP kept the replicas identical
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]  # one line per step, written once
    assert (out / "model.safetensors").is_file() and (out / "checkpoints" / "step-3").is_dir()
    if kind == "rl":
        samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
        assert len(samples) == 3 * 8  # rank 0's rollouts (2 prompts x 4) each step
