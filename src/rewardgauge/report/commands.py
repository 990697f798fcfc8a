"""``rewardgauge report RUN_DIR``: the run directory as one HTML page (and a Markdown twin)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from rewardgauge.config import add_config_args, config_from_args


@dataclass
class ReportConfig:
    run_dir: str = field(metadata={"help": "run directory written by rewardgauge commands"})
    out: str | None = field(default=None, metadata={
        "help": "HTML file to write (default: RUN_DIR/report.html); the Markdown twin goes beside it as .md"})
    max_points: int = field(default=500, metadata={"help": "most points drawn per metric line (long runs are "
                                                            "downsampled, keeping each bucket's min and max)"})

    def validate(self) -> None:
        if self.max_points < 10:
            raise ValueError(f"max_points must be at least 10, got {self.max_points}")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="write report.html (+ report.md) for a run directory",
        description="Write one self-contained HTML page (inline CSS and SVG charts; opens offline) and a Markdown "
                    "twin for a run directory and its sub-runs (folders up to 3 levels below, e.g. sft/, rm/). "
                    "First: is the reward model fit to optimise against? Its PASS/FAIL bars, held-out accuracy "
                    "by difficulty with 95 % Wilson intervals, a reliability diagram and the audit (eval*.json, "
                    "audit*.json). Then summary.json with readable labels, training curves from metrics.jsonl "
                    "(loss, accuracy, margin, grad norm, lr, ...), world.json, config.yaml and the other files by "
                    "size. Damaged files become notes in the report; a missing run directory exits with 2.")
    add_config_args(p, ReportConfig, positional=("run_dir",))
    p.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from rewardgauge.io import check_output
    from rewardgauge.report.build import build_report, markdown_path

    cfg = config_from_args(ReportConfig, args)
    run_dir = Path(cfg.run_dir)
    if run_dir.is_dir():  # (build_report itself names a missing run directory or one that is a file)
        html = check_output(cfg.out or run_dir / "report.html", "file")
        check_output(markdown_path(html), "file")
    out = build_report(cfg.run_dir, cfg.out, max_points=cfg.max_points)
    print(f"wrote {out} and {markdown_path(out)}")
    return 0
