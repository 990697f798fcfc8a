"""The command line of process reward models: ``rewardgauge prm train | eval | label | review`` and
``rewardgauge bon``. The parts live in their layers: records in ``data.steps``, the step head and its
evaluation in ``rewards``, training and rollout labels in ``train``, the review queue in ``review``."""
