"""Load any reward source by spec: a saved reward-model folder (or hub name), an ensemble folder, a DPO run
folder (its implicit reward), execution against the hidden tests of a code-task file (``exec:TASKS.jsonl``),
a reward server's URL (``http://host:port``, comma-separated for replicas; ``rewards/remote.py``), or a named
reward that an installed package registers in the ``rewardgauge.rewards`` entry-point group.

Named rewards come from entry points so that this layer imports nothing above it: the lab registers its gold
reward as ``lab-gold`` (see pyproject.toml), and anything that loads a reward by spec (the CLI, RL recipes,
the monitor, a reward server) gets it by name without importing the lab. An entry point names a factory
called as ``factory(device=..., batch_size=...)`` that returns a RewardModel.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from rewardgauge.errors import InputError
from rewardgauge.rewards.base import RewardModel

ENTRY_POINT_GROUP = "rewardgauge.rewards"
DPO_FILE = "dpo.json"  # marks a DPO run folder: {"beta": ..., "reference": ...} (see rewards/dpo.py)


def named_rewards() -> dict[str, EntryPoint]:
    """The named reward specs of every installed package, by name."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_reward_model(spec: str, device: str | None = None, batch_size: int = 64, *, aggregator: str | None = None,
                      lam: float | None = None, q: float | None = None) -> RewardModel:
    """``aggregator``/``lam``/``q`` override an ensemble's saved aggregate; they are an error for anything else."""
    if str(spec).startswith(("http://", "https://")):
        if aggregator is not None or lam is not None or q is not None:
            raise InputError("aggregator, lam and quantile are chosen by the server (rewardgauge serve "
                             "--aggregator), not by its clients", path=spec, field="aggregator")
        from rewardgauge.rewards.remote import RemoteRewardModel
        try:
            return RemoteRewardModel(str(spec), batch_size=batch_size)
        except ValueError as e:
            raise InputError(str(e), path=spec) from None
    if isinstance(spec, str) and spec.startswith("exec:"):
        from rewardgauge.rewards.execution import ExecutionReward
        from rewardgauge.sandbox.tasks import load_tasks
        return ExecutionReward(load_tasks(spec[len("exec:"):]))
    path = Path(spec)
    if (path / DPO_FILE).is_file():
        from rewardgauge.rewards.dpo import DPOImplicitReward
        return DPOImplicitReward.from_pretrained(path, device=device, batch_size=batch_size)
    if (path / "ensemble.json").is_file():
        from rewardgauge.rewards.ensemble import EnsembleRewardModel
        return EnsembleRewardModel.from_pretrained(path, aggregator=aggregator, lam=lam, q=q, device=device,
                                                   batch_size=batch_size)
    if (path / "prm.json").is_file():  # a process reward model: reward = its default step aggregate
        from rewardgauge.rewards.process import ProcessRewardModel
        if aggregator is not None or lam is not None or q is not None:
            raise InputError("aggregator, lam and quantile apply to ensemble folders; a PRM's step aggregation "
                             "is chosen with its own option", path=spec, field="aggregator")
        return ProcessRewardModel.from_pretrained(path, device=device, batch_size=batch_size)
    if aggregator is not None or lam is not None or q is not None:
        raise InputError("aggregator, lam and quantile apply to ensemble folders (with ensemble.json) only",
                         path=spec, field="aggregator")
    named = None if path.exists() else named_rewards().get(spec)
    if named is not None:
        reward = named.load()(device=device, batch_size=batch_size)
        if not isinstance(reward, RewardModel):
            raise TypeError(f"the named reward '{spec}' ({named.value}) did not return a RewardModel")
        return reward
    if not path.exists() and (spec.startswith((".", "/")) or spec.count("/") > 1):
        raise InputError("reward model folder not found", path=spec)
    from rewardgauge.rewards.hf import HFRewardModel
    return HFRewardModel.from_pretrained(spec, device=device, batch_size=batch_size)
