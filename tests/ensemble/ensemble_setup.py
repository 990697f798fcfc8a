"""Settings the ensemble tests and the torchrun fan-out worker share (a plain module: importing names from a
conftest depends on which ``conftest`` pytest put in sys.modules first)."""

K = 3
# Small enough for seconds per member; the same settings are used by the torchrun fan-out worker.
TRAIN = dict(members=K, max_steps=12, batch_size=16, save_every=0, progress=False, reference_size=64, lr=2e-3)


def train_cfg(lang, out, **kw):
    from rewardgauge.train.config import RewardTrainConfig

    return RewardTrainConfig(**{"model": str(lang["model"]), "data": str(lang["train"]), "out": str(out), **TRAIN, **kw})
