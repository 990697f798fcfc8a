"""Run by test_rl_ddp under torchrun: an rl or a dpo run, then each rank writes a checksum of its parameters."""

import hashlib
import json
import os
import sys
from pathlib import Path

from rewardgauge.config import load_config

kind, out, *rest = sys.argv[1:]
if kind == "rl":
    from rewardgauge.train.config import RLConfig
    from rewardgauge.train.rl import run_rl

    prompts, policy = rest
    result = run_rl(load_config(RLConfig, None, {
        "prompts": prompts, "out": out, "policy.model": policy, "reward.models": "lab-gold", "steps": 3,
        "prompts_per_step": 4, "generation.group_size": 4, "generation.max_new_tokens": 10, "policy.lr": 1e-3,
        "kl.coef": 0.05, "save_every": 2, "progress": False}))
else:
    from rewardgauge.train.config import DPOConfig
    from rewardgauge.train.dpo import run_dpo

    data, policy = rest
    result = run_dpo(DPOConfig(model=policy, data=data, out=out, max_steps=3, batch_size=4, lr=1e-3,
                               save_every=2, progress=False))
digest = hashlib.sha256()
for name, tensor in sorted(result.model.state_dict().items()):
    digest.update(name.encode())
    digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
rank = int(os.environ.get("RANK", "0"))
Path(out, f"rank{rank}.json").write_text(json.dumps(
    {"rank": rank, "world": int(os.environ.get("WORLD_SIZE", "1")), "sha256": digest.hexdigest(),
     "steps": result.steps}))
