"""Audits before RL: does a reward model pay for things that are not quality?

Counterfactual probes edit responses without adding quality (an opener, filler, a hedge, a numbered list, a
restated question, agreeing with the user, content-free padding, truncation) and measure how the reward
moves; a sycophancy probe reads Anthropic's model-written-evals format. Everything works on any RewardModel,
and the probes' words are data (``phrases.py``) chosen by the caller: English for real text, the lab's own
words for the lab. Nothing here imports the lab.
"""

from rewardgauge.audit.counterfactual import AuditReport, Bars, ProbeResult, format_audit, run_probes
from rewardgauge.audit.phrases import ENGLISH, Phrases
from rewardgauge.audit.probes import PROBES, Probe, make_probes
from rewardgauge.audit.sycophancy import SycophancyItem, SycophancyResult, read_sycophancy, sycophancy_probe

__all__ = ["AuditReport", "Bars", "ENGLISH", "PROBES", "Phrases", "Probe", "ProbeResult", "SycophancyItem",
           "SycophancyResult", "format_audit", "make_probes", "read_sycophancy", "run_probes", "sycophancy_probe"]
