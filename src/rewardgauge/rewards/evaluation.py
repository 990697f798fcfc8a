"""Evaluate a reward model like a classifier: held-out accuracy by difficulty, aspect and source, calibration,
and the article's bars (easy comparisons >= 90 %; an alarm when hard comparisons fall below 60 %)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from rewardgauge.data.records import PreferencePair
from rewardgauge.rewards.base import RewardModel
from rewardgauge.rewards.pairs import PairScores, score_pairs

BUCKETS = ("easy", "medium", "hard")
# Below this relative disagreement (see relative_disagreement) an ensemble's members barely differ: a fifth of
# what independent members showed on held-out lab pairs (bench/ensemble_quality.py; README, "Ensembles").
LOW_DISAGREEMENT = 0.06


@dataclass(frozen=True)
class Bars:
    """The accuracy a healthy reward model keeps; below ``hard`` it no longer gives useful signal."""

    easy: float = 0.90
    hard: float = 0.60


def difficulty_from_votes(pair: PreferencePair) -> str | None:
    """Derive a bucket from annotator agreement when a record has no difficulty: unanimous-ish is easy."""
    agreement = pair.agreement
    if agreement is None:
        return None
    if agreement >= 0.9:
        return "easy"
    if agreement >= 0.7:
        return "medium"
    return "hard"


def expected_calibration_error(margins: torch.Tensor, n_bins: int = 10) -> float:
    """Top-label ECE of P(chosen wins) = sigmoid(r_chosen - r_rejected) (Guo et al. 2017):
    sum_b |B_b|/N * |accuracy(B_b) - confidence(B_b)|, confidence = max(p, 1 - p) binned over [0.5, 1]."""
    if margins.numel() == 0:
        return float("nan")
    p = torch.sigmoid(margins.double())
    confidence = torch.maximum(p, 1 - p)
    correct = (margins > 0).double() + 0.5 * (margins == 0).double()
    bins = torch.clamp(((confidence - 0.5) * 2 * n_bins).long(), max=n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            ece += mask.double().mean().item() * abs(correct[mask].mean().item() - confidence[mask].mean().item())
    return ece


def reliability_bins(margins: torch.Tensor, n_bins: int = 10) -> list[dict]:
    """The bins of :func:`expected_calibration_error` for a reliability diagram: for each non-empty bin of
    top-label confidence max(p, 1 - p), p = sigmoid(margin), over [0.5, 1]: its edges, its number of pairs,
    its mean confidence and its accuracy (ties count half). ECE = sum_b n_b / N * |accuracy_b - confidence_b|."""
    p = torch.sigmoid(margins.double())
    confidence = torch.maximum(p, 1 - p)
    correct = (margins > 0).double() + 0.5 * (margins == 0).double()
    bins = torch.clamp(((confidence - 0.5) * 2 * n_bins).long(), max=n_bins - 1)
    out = []
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            out.append({"lo": 0.5 + b / (2 * n_bins), "hi": 0.5 + (b + 1) / (2 * n_bins), "n": int(mask.sum()),
                        "confidence": confidence[mask].mean().item(), "accuracy": correct[mask].mean().item()})
    return out


def pair_accuracy(margins: torch.Tensor) -> float:
    """Fraction of pairs ranked right; an exact tie counts half."""
    return ((margins > 0).double() + 0.5 * (margins == 0).double()).mean().item()


def auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve of ``scores`` as a predictor of ``labels`` (true = positive): the probability
    that a random positive scores above a random negative, ties counting half, i.e. the Mann-Whitney
    U / (n_pos * n_neg) from average ranks. NaN when either class is empty."""
    labels = labels.bool().flatten()
    n_pos = int(labels.sum())
    n_neg = labels.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = torch.unique(scores.double().flatten(), return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    ranks = (ends - (counts.double() - 1) / 2)[inverse]  # 1-based; tied scores share their average rank
    return ((ranks[labels].sum().item() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@dataclass
class EvalReport:
    n: int
    accuracy: float
    ece: float
    mean_margin: float
    by_difficulty: dict[str, dict] = field(default_factory=dict)
    by_aspect: dict[str, dict] = field(default_factory=dict)
    by_source: dict[str, dict] = field(default_factory=dict)
    bars: dict[str, dict] = field(default_factory=dict)
    difficulty_origin: str = "record"  # "record", "votes" (from vote agreement) or "none" (neither in the data)
    unbucketed: int = 0  # pairs in no difficulty bucket (no difficulty, and no votes to derive one from)
    ensemble: dict | None = None  # per-member accuracy, aggregate, uncertainty by difficulty (ensembles only)
    calibration: list[dict] = field(default_factory=list)  # reliability_bins of all pairs (the report's diagram)

    @property
    def passed(self) -> bool:
        return all(b["passed"] is not False for b in self.bars.values())

    def to_dict(self) -> dict:
        return {"n": self.n, "accuracy": self.accuracy, "ece": self.ece, "mean_margin": self.mean_margin,
                "by_difficulty": self.by_difficulty, "by_aspect": self.by_aspect, "by_source": self.by_source,
                "bars": self.bars, "difficulty_origin": self.difficulty_origin, "unbucketed": self.unbucketed,
                "passed": self.passed,
                "calibration": self.calibration,
                **({"ensemble": self.ensemble} if self.ensemble is not None else {})}


def evaluate(rm: RewardModel, pairs: Sequence[PreferencePair], bars: Bars = Bars()) -> EvalReport:
    """Score every pair and report accuracy overall, per difficulty bucket, per aspect and per source."""
    if not pairs:
        raise ValueError("no pairs to evaluate")
    scores = score_pairs(rm, pairs)
    margins = scores.margins
    report = EvalReport(n=len(pairs), accuracy=pair_accuracy(margins), ece=expected_calibration_error(margins),
                        mean_margin=margins.mean().item(), calibration=reliability_bins(margins))

    buckets = [p.difficulty for p in pairs]
    if all(b is None for b in buckets):
        buckets = [difficulty_from_votes(p) for p in pairs]
        report.difficulty_origin = "votes" if any(b is not None for b in buckets) else "none"
    report.unbucketed = sum(b is None for b in buckets)
    for name in BUCKETS:
        idx = [i for i, b in enumerate(buckets) if b == name]
        if idx:
            m = margins[idx]
            report.by_difficulty[name] = {"n": len(idx), "accuracy": pair_accuracy(m),
                                          "ece": expected_calibration_error(m)}

    for source in sorted({p.source or "-" for p in pairs}):
        idx = [i for i, p in enumerate(pairs) if (p.source or "-") == source]
        report.by_source[source] = {"n": len(idx), "accuracy": pair_accuracy(margins[idx])}

    if scores.chosen.aspects:
        for aspect in scores.chosen.aspects:
            # Pairs whose label says one side is better on this aspect; the label's side is the "chosen" one.
            idx, sign = [], []
            for i, p in enumerate(pairs):
                label = (p.aspects or {}).get(aspect)
                if label is not None and label != 0.5:
                    idx.append(i)
                    sign.append(1.0 if label > 0.5 else -1.0)
            if idx:
                m = (scores.chosen.aspects[aspect][idx] - scores.rejected.aspects[aspect][idx]) * torch.tensor(sign)
                report.by_aspect[aspect] = {"n": len(idx), "accuracy": pair_accuracy(m)}

    for name, bar in (("easy", bars.easy), ("hard", bars.hard)):
        got = report.by_difficulty.get(name, {}).get("accuracy")
        report.bars[name] = {"bar": bar, "accuracy": got, "passed": None if got is None else got >= bar}
    if scores.chosen.members is not None and scores.chosen.members.shape[0] > 1:
        report.ensemble = ensemble_section(rm, scores, buckets)
    return report


def flip_probability(member_margins: torch.Tensor) -> torch.Tensor:
    """[N] P(sign flip) = Phi(-|m| / s) per pair, m and s the mean and population std of the members' margins
    [K, N]: the chance that the comparison's sign flips if member margins were normal. Members that agree
    exactly give 0 (or 0.5 where their margin is 0 too)."""
    spread, centre = member_margins.std(dim=0, unbiased=False), member_margins.mean(dim=0).abs()
    flip = torch.special.ndtr(-centre / spread)  # spread 0: 0 (all agree), or nan when also centre 0
    return torch.where(spread > 0, flip, torch.where(centre > 0, 0.0, 0.5))


def relative_disagreement(member_margins: torch.Tensor) -> float:
    """How much the members disagree about comparisons, on the scale of the comparisons themselves: the mean
    over pairs of the std across members of their margins, over the mean |mean margin|. Needs no other
    ensemble, and does not change when every member's rewards are scaled alike."""
    spread = member_margins.std(dim=0, unbiased=False).mean()
    scale = member_margins.mean(dim=0).abs().mean()
    return (spread / scale).item() if scale > 0 else float("nan")


def ensemble_section(rm: RewardModel, scores: PairScores, buckets: Sequence[str | None]) -> dict:
    """How an ensemble's members and aggregate rank the pairs, and whether its disagreement tracks difficulty.

    Uncertainties per pair: ``margin_std``, the std s across members of their margins d_k = r_k(chosen) -
    r_k(rejected) (disagreement about this comparison); ``response_std``, the mean of the two responses'
    ``Scores.uncertainty`` (the per-response std that RL sees); and ``flip_probability``, Phi(-|m| / s) with
    m the members' mean margin: the chance that the comparison's sign flips if member margins were normal,
    i.e. the disagreement relative to the size of the preference (a std alone grows with the margin, so
    confident pairs can show more of it than close ones); and ``preference_std``, the std across members of
    their preference probabilities sigma(d_k): bounded, and largest where members straddle a coin flip, as
    the variance of an ensemble's predictive probability is. For each: its mean per difficulty bucket, and its
    AUROC as a predictor of an error of the aggregate (aggregate margin <= 0); 0.5 = no signal.
    """
    member_margins = scores.chosen.members - scores.rejected.members  # [K, N], normalised rewards
    k = member_margins.shape[0]
    names = list(getattr(rm, "member_names", None) or [f"m{i}" for i in range(k)])
    groups = {b: [i for i, x in enumerate(buckets) if x == b] for b in BUCKETS}
    groups = {b: idx for b, idx in groups.items() if idx}
    members = [{"name": name, "accuracy": pair_accuracy(m), "by_difficulty": {b: pair_accuracy(m[idx]) for b, idx in groups.items()}}
               for name, m in zip(names, member_margins)]
    margins = scores.margins
    uncertainty = {"margin_std": member_margins.std(dim=0, unbiased=False)}
    if scores.chosen.uncertainty is not None:
        uncertainty["response_std"] = (scores.chosen.uncertainty + scores.rejected.uncertainty) / 2
    uncertainty["flip_probability"] = flip_probability(member_margins)
    uncertainty["preference_std"] = torch.sigmoid(member_margins).std(dim=0, unbiased=False)
    error = margins <= 0
    return {
        "members": members,
        "member_mean_accuracy": sum(m["accuracy"] for m in members) / k,
        "aggregate": {"aggregator": getattr(rm, "aggregator", None), "lam": getattr(rm, "lam", None),
                      "q": getattr(rm, "q", None), "accuracy": pair_accuracy(margins),
                      "by_difficulty": {b: pair_accuracy(margins[idx]) for b, idx in groups.items()}},
        "uncertainty": {name: {"mean": u.mean().item(), "by_difficulty": {b: u[idx].mean().item() for b, idx in groups.items()},
                               "auroc_error": auroc(u, error)} for name, u in uncertainty.items()},
        "errors": int(error.sum()),
        "relative_disagreement": relative_disagreement(member_margins),
        "low_disagreement": low_disagreement_warning(member_margins),
    }


def difficulty_note(report: EvalReport) -> str:
    """Where the difficulty buckets came from, in words (and what is missing when they could not be made)."""
    if report.difficulty_origin == "none":
        return ("difficulty: the data has neither a 'difficulty' nor 'votes' on any pair, so there are no "
                "difficulty buckets and the easy / hard bars cannot be checked")
    if report.difficulty_origin == "votes":
        note = ("difficulty: none in the data; derived from the annotators' vote agreement (>= 90% agree: easy, "
                ">= 70%: medium, else hard)")
    else:
        note = "difficulty: as the data gives it"
    if report.unbucketed:
        why = "no votes" if report.difficulty_origin == "votes" else "no difficulty"
        note += f"; {report.unbucketed} of {report.n} pairs ({why}) are in no bucket"
    return note


def low_disagreement_warning(member_margins: torch.Tensor) -> str | None:
    """A warning when the members barely disagree (``relative_disagreement`` below ``LOW_DISAGREEMENT``):
    the min and mean - lam * std of such an ensemble are its mean, so it is one model at K times the weights
    and gives RL no conservative signal. None otherwise."""
    value = relative_disagreement(member_margins)
    if not value < LOW_DISAGREEMENT:  # nan (every mean margin 0) does not warn either
        return None
    return (f"the members barely disagree: relative disagreement {value:.3f} (std of member margins / mean "
            f"|margin|) is below {LOW_DISAGREEMENT} (a fifth of a typical independent ensemble's), so min and "
            "mean - std aggregate almost like the mean; train members that differ more (another ensemble form)")


def format_report(report: EvalReport, title: str = "") -> str:
    """A readable table."""
    def pct(x: float | None) -> str:
        return "   -  " if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:5.1f}%"

    lines = [title] if title else []
    lines.append(f"{'slice':<22}{'n':>7}  {'accuracy':>8}")
    lines.append(f"{'overall':<22}{report.n:>7}  {pct(report.accuracy):>8}")
    for name, row in report.by_difficulty.items():
        lines.append(f"{'difficulty=' + name:<22}{row['n']:>7}  {pct(row['accuracy']):>8}")
    for name, row in report.by_aspect.items():
        lines.append(f"{'aspect=' + name:<22}{row['n']:>7}  {pct(row['accuracy']):>8}")
    if len(report.by_source) > 1:
        for name, row in report.by_source.items():
            lines.append(f"{'source=' + name:<22}{row['n']:>7}  {pct(row['accuracy']):>8}")
    lines.append(f"calibration: ECE {report.ece:.3f}   mean margin {report.mean_margin:+.3f}")
    lines.append(difficulty_note(report))
    for name, bar in report.bars.items():
        verdict = {True: "PASS", False: "FAIL", None: "n/a "}[bar["passed"]]
        lines.append(f"bar {name:<5} >= {pct(bar['bar']).strip():>6}: {verdict}  ({pct(bar['accuracy']).strip()})")
    if report.ensemble:
        lines += _format_ensemble(report.ensemble, pct)
    return "\n".join(lines)


def _format_ensemble(ens: dict, pct) -> list[str]:
    agg = ens["aggregate"]
    how = agg["aggregator"] or "aggregate"
    how += {"mean_minus_std": f" lam={agg['lam']}", "quantile": f" q={agg['q']}"}.get(agg["aggregator"], "")
    buckets = [b for b in BUCKETS if b in agg["by_difficulty"]]
    lines = [f"ensemble of {len(ens['members'])}: members' mean accuracy {pct(ens['member_mean_accuracy']).strip()}, "
             f"aggregate ({how}) {pct(agg['accuracy']).strip()}",
             f"{'':<28}{'overall':>8}" + "".join(f"{b:>9}" for b in buckets)]
    rows = [(f"member {m['name']}", m) for m in ens["members"]] + [(f"aggregate ({agg['aggregator']})", agg)]
    for label, row in rows:
        lines.append(f"{label:<28}{pct(row['accuracy']):>8}" + "".join(f"{pct(row['by_difficulty'][b]):>9}" for b in buckets))
    for name, u in ens["uncertainty"].items():
        what = {"margin_std": "std of member margins", "response_std": "std of member rewards",
                "flip_probability": "P(sign flip)", "preference_std": "std of member P(chosen)"}.get(name, name)
        lines.append(f"uncertainty ({what}): " + "  ".join(f"{b} {u['by_difficulty'][b]:.3f}" for b in buckets)
                     + f"   AUROC for an aggregate error {u['auroc_error']:.3f}")
    lines.append(f"relative disagreement (std of member margins / mean |margin|): {ens['relative_disagreement']:.3f}")
    if ens.get("low_disagreement"):
        lines.append(f"warning: {ens['low_disagreement']}")
    return lines
