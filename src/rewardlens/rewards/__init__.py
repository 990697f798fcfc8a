"""Every reward source (HF model, ensemble, gold function, sandbox, remote server) is a RewardModel."""

from rewardlens.rewards.base import RewardModel, Scores

__all__ = ["RewardModel", "Scores"]
