"""The reward-model health monitor: an early warning of reward hacking during RL.

Detectors (``detectors/``) each watch one signal in the policy's samples; an on-policy evaluation
(``onpolicy.py``) asks a labeller trusted more than the proxy (``labellers.py``) whether the proxy is still
right about what the policy writes; alarms (``alarms.py``) carry a severity and an action that the RL loop
carries out. ``Monitor.observe(step, rollouts)`` runs them all. The pre-RL audit lives beside this package
(``rewardgauge.audit``), whose probe words and style patterns the detectors reuse.
"""

from rewardgauge.monitor.alarms import Alarm, AlarmPolicy, AlarmSink
from rewardgauge.monitor.labellers import (
           Buckets,
           Comparison,
           HumanQueue,
           Labeller,
           RewardLabeller,
           load_labeller,
)
from rewardgauge.monitor.monitor import Monitor, MonitorConfig, Observation
from rewardgauge.monitor.onpolicy import OnPolicyConfig, OnPolicyEval
from rewardgauge.monitor.rollouts import Rollouts, Sampler

__all__ = ["Alarm", "AlarmPolicy", "AlarmSink", "Buckets", "Comparison", "HumanQueue", "Labeller", "Monitor",
           "MonitorConfig", "Observation", "OnPolicyConfig", "OnPolicyEval", "RewardLabeller", "Rollouts",
           "Sampler", "load_labeller"]
