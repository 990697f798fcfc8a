"""Detectors of reward hacking, each a small class with one job (see ``base.py`` for what they share)."""

from rewardgauge.monitor.detectors.base import Detector, Finding, History, Trigger
from rewardgauge.monitor.detectors.disagreement import DisagreementConfig, DisagreementDetector
from rewardgauge.monitor.detectors.gold_gap import GoldGapConfig, GoldGapDetector
from rewardgauge.monitor.detectors.kl import KLBudgetConfig, KLBudgetDetector
from rewardgauge.monitor.detectors.latent import LatentConfig, LatentOutlierDetector
from rewardgauge.monitor.detectors.length import LengthConfig, LengthDetector
from rewardgauge.monitor.detectors.style import StyleConfig, StyleDetector
from rewardgauge.monitor.detectors.sycophancy import (
    FalsePremiseProbe,
    SycophancyConfig,
    SycophancyDetector,
    read_false_premise_probes,
)

__all__ = ["Detector", "DisagreementConfig", "DisagreementDetector", "FalsePremiseProbe", "Finding",
           "GoldGapConfig", "GoldGapDetector", "History", "KLBudgetConfig", "KLBudgetDetector", "LatentConfig",
           "LatentOutlierDetector", "LengthConfig", "LengthDetector", "StyleConfig", "StyleDetector",
           "SycophancyConfig", "SycophancyDetector", "Trigger", "read_false_premise_probes"]
