"""Run by test_kill_resume: ``rm train`` with the config given as JSON, killed with SIGKILL after step N (no
exception, no cleanup, no finally block: what kill -9 or the OOM killer does)."""

import json
import os
import signal
import sys

from rewardgauge.train.reward import RewardTrainConfig, train_reward_model


def kill_at(step: int):
    def callback(state):
        if state.step == step:
            os.kill(os.getpid(), signal.SIGKILL)
    return callback


train_reward_model(RewardTrainConfig(**json.loads(sys.argv[1])), callbacks=[kill_at(int(sys.argv[2]))])
