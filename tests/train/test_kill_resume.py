"""kill -9 in the middle of ``rm train``, then ``--resume`` through the CLI: the final weights and the metrics
are bit-identical to those of a run that was never interrupted (issue 16 keeps this guarantee)."""

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rewardgauge.cli import main
from rewardgauge.train.reward import RewardTrainConfig, train_reward_model


@pytest.mark.slow  # a subprocess that imports torch and transformers, plus two short runs
def test_sigkill_then_resume_is_bit_identical(lang, tmp_path):
    cfg = dict(model=str(lang["model"]), data=str(lang["train"]), lr=2e-3, batch_size=16, progress=False,
               max_steps=12, save_every=4, keep_checkpoints=2, log_every=3)
    train_reward_model(RewardTrainConfig(out=str(tmp_path / "full"), **cfg))

    cut = tmp_path / "cut"
    killed = subprocess.run([sys.executable, str(Path(__file__).with_name("kill_worker.py")),
                             json.dumps({**cfg, "out": str(cut)}), "6"], capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (cut / "model.safetensors").exists()
    assert sorted(p.name for p in (cut / "checkpoints").iterdir()) == ["step-4"]

    flags = [f"--{k.replace('_', '-')}={v}" for k, v in cfg.items() if k != "progress"]
    assert main(["rm", "train", *flags, "--out", str(cut), "--no-progress", "--resume"]) == 0

    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((cut / "model.safetensors").stat().st_mode) == 0o666 & ~mask  # safetensors writes 0600
    full, resumed = load_file(tmp_path / "full" / "model.safetensors"), load_file(cut / "model.safetensors")
    assert full.keys() == resumed.keys()
    assert all(torch.equal(full[k], resumed[k]) for k in full), "weights differ after kill -9 and resume"

    def steps(run):
        return [{k: v for k, v in json.loads(line).items() if k != "time"}
                for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps(cut) == steps(tmp_path / "full")
