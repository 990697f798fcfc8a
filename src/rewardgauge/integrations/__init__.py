"""Adapters that let other RL frameworks use rewardgauge's reward models (verl's custom reward function)."""
