"""Adapters that put rewardgauge inside other RL frameworks: verl's custom reward function over a reward
server (``verl.py``), and TRL's GRPO / RLOO (``trl.py``: reward functions and the monitor as a callback).
Nothing here imports TRL itself: the reward function is a plain callable and the callback a transformers
``TrainerCallback``, so the TRL extra is needed only to run the trainers."""
