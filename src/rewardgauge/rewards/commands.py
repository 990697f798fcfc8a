"""``rewardgauge rm eval``: evaluate a reward model like a classifier."""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field

from rewardgauge.cli import group
from rewardgauge.config import add_config_args, config_from_args
from rewardgauge.rewards.aggregators import Aggregator


@dataclass
class RMEvalConfig:
    model: str = field(metadata={"help": "reward-model folder or name, an ensemble folder, or 'lab-gold'"})
    data: str = field(metadata={"help": "held-out preference pairs (JSONL or a datasets folder)"})
    json: bool = field(default=False, metadata={"help": "print the report as JSON instead of a table"})
    out: str | None = field(default=None, metadata={"help": "also write the JSON report to this file"})
    easy_bar: float = field(default=0.90, metadata={"help": "accuracy easy comparisons must keep"})
    hard_bar: float = field(default=0.60, metadata={"help": "accuracy below which hard comparisons raise an alarm"})
    fail_on_bars: bool = field(default=False, metadata={"help": "exit with 1 when a bar fails"})
    batch_size: int = field(default=64, metadata={"help": "scoring batch size"})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, ... (default: cuda if available)"})
    aggregator: Aggregator | None = field(default=None, metadata={
        "help": "ensembles: aggregate of the normalised members (default: the one saved in ensemble.json)"})
    lam: float | None = field(default=None, metadata={"help": "ensembles, mean_minus_std: weight of the std (default: the one saved in ensemble.json)"})
    quantile: float | None = field(default=None, metadata={"help": "ensembles, quantile aggregator: q in [0, 1] (default: the one saved in ensemble.json)"})

    def validate(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        for name in ("easy_bar", "hard_bar", "quantile"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 1:  # NaN fails too
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.lam is not None and not 0 <= self.lam < math.inf:
            raise ValueError(f"lam must be a finite number >= 0, got {self.lam}")


def register(sub: argparse._SubParsersAction) -> None:
    rm = group(sub, "rm", "reward models: train, evaluate, audit")
    p = rm.add_parser(
        "eval", help="accuracy by difficulty / aspect / source, calibration, pass/fail bars",
        description="Evaluate a reward model on held-out pairs like a classifier: accuracy overall, per "
                    "difficulty bucket (from the record, else derived from vote agreement, else none; the output says "
                    "which), per aspect and per "
                    "source; expected calibration error of sigmoid(reward difference); and the bars "
                    "easy >= 0.90 and hard >= 0.60, printed as PASS/FAIL. For an ensemble folder also each "
                    "member's accuracy, the aggregate's, the members' disagreement (std) per difficulty "
                    "bucket and its AUROC for predicting an error of the aggregate.")
    add_config_args(p, RMEvalConfig)
    p.set_defaults(func=_eval)


def _eval(args: argparse.Namespace) -> int:
    return run_eval(config_from_args(RMEvalConfig, args))


def run_eval(cfg: RMEvalConfig) -> int:
    """Evaluate, print the report (and write it to ``cfg.out``); 1 when a bar fails and ``fail_on_bars``."""
    from rewardgauge.data.io import load_pairs
    from rewardgauge.errors import InputError
    from rewardgauge.io import check_output, write_json_atomic
    from rewardgauge.modeling.loading import resolve_device
    from rewardgauge.rewards.card import refresh_card_after
    from rewardgauge.rewards.evaluation import Bars, evaluate, format_report
    from rewardgauge.rewards.loading import load_reward_model

    device = resolve_device(cfg.device)
    if cfg.out:
        check_output(cfg.out, "file")  # before the scoring run, not after it
    pairs = load_pairs(cfg.data)
    if not pairs:
        raise InputError("holds no preference pairs", path=cfg.data)
    rm = load_reward_model(cfg.model, device=device, batch_size=cfg.batch_size, aggregator=cfg.aggregator,
                           lam=cfg.lam, q=cfg.quantile)
    report = evaluate(rm, pairs, Bars(easy=cfg.easy_bar, hard=cfg.hard_bar))
    result = {"model": cfg.model, "data": cfg.data, **report.to_dict()}
    if cfg.out:
        write_json_atomic(cfg.out, result)
        refresh_card_after(cfg.out, cfg.model)
    print(json.dumps(result, sort_keys=True) if cfg.json else format_report(report, f"{cfg.model} on {cfg.data}"))
    if cfg.json and report.ensemble and report.ensemble["low_disagreement"]:
        print(f"warning: {report.ensemble['low_disagreement']}", file=sys.stderr)
    return 1 if cfg.fail_on_bars and not report.passed else 0
