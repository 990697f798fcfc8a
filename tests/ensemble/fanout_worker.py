"""Run by test_fanout under torchrun: train the K=3 ensemble, members spread over the processes."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from ensemble_setup import TRAIN  # noqa: E402

from rewardgauge.train.config import RewardTrainConfig  # noqa: E402
from rewardgauge.train.ensemble import train_ensemble  # noqa: E402

model, data, out, form = sys.argv[1:5]
train_ensemble(RewardTrainConfig(model=model, data=data, out=out, ensemble_form=form, **TRAIN))
