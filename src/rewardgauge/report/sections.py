"""Section builders: what a run directory holds -> the report's sections, in reading order.

The first section answers "is this reward model fit to optimise against?"; the evidence and the training
follow. Each builder takes the read run and returns its sections (none when the run has nothing for it), so a
new kind of run (RL: proxy and gold reward over steps, length and style rates, rollouts, alarms) adds a
builder to ``BUILDERS`` and touches nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rewardgauge.report import charts
from rewardgauge.report.artefacts import (
    DIFFICULTIES,
    Evaluation,
    Probe,
    Slice,
    read_alarms,
    read_audit,
    read_evaluation,
)
from rewardgauge.report.collect import Folder
from rewardgauge.report.formatting import fmt, human_size, pct
from rewardgauge.report.labels import CLOCK_KEYS, CURVE_ORDER, label, summary_order, value_cell, verdict_cell
from rewardgauge.report.model import (
    Block,
    Cell,
    Code,
    Facts,
    Figure,
    Note,
    Paragraph,
    Section,
    Table,
    Verdict,
)

CI_NAME = "95% Wilson score interval"
RL_WINDOW = 5  # steps averaged in the RL section's summary sentence
EXPLOIT_STD = 0.1  # an audit edit the reward model pays this many std for, and gold does not, is flagged


@dataclass
class Run:
    """A run directory, read: its folders, and the evaluations and audits parsed from them."""

    root: Path
    folders: list[Folder]
    max_points: int = 500
    evaluations: list[Evaluation] = field(default_factory=list)
    audits: list[tuple[str, list[Probe]]] = field(default_factory=list)  # (file, probes)
    notes: list[str] = field(default_factory=list)

    @property
    def primary(self) -> Evaluation | None:
        """The evaluation the headline answers with: the first (in pipeline order) that checks the bars."""
        with_bars = [e for e in self.evaluations if e.bars]
        return (with_bars or self.evaluations or [None])[0]

    @property
    def primary_audit(self) -> tuple[str, list[Probe]] | None:
        """The audit beside the primary evaluation, else the first one."""
        ev = self.primary
        if ev is not None:
            here = ev.file.rpartition("/")[0]
            for audit in self.audits:
                if audit[0].rpartition("/")[0] == here:
                    return audit
        return self.audits[0] if self.audits else None


def read_run(root: Path, folders: list[Folder], max_points: int = 500) -> Run:
    run = Run(root, folders, max_points)
    for f in folders:
        run.notes += [n if f.rel == "." else f"{f.rel}/{n}" for n in f.notes]  # notes start with a file name
        for name, obj in f.evals:
            try:
                run.evaluations.append(read_evaluation(f.file(name), obj))
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                run.notes.append(f"{f.file(name)}: not an evaluation report ({type(e).__name__}: {e})")
        for name, obj in f.audits:
            try:
                # the edits the reward model pays most for first
                probes = sorted(read_audit(obj), key=lambda p: -(p.change if p.change_std is None else p.change_std))
                run.audits.append((f.file(name), probes))
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                run.notes.append(f"{f.file(name)}: not an audit report ({type(e).__name__}: {e})")
    return run


# --- shared pieces ----------------------------------------------------------------------------------------

def _interval(s: Slice) -> str:
    return f"{100 * s.low:.1f}–{100 * s.high:.1f}%"


def accuracy_figure(ev: Evaluation) -> Figure:
    slices = [*ev.by_difficulty, ev.overall]
    bars = {b.name: b for b in ev.bars}
    rows = []
    for s in slices:
        bar = bars.get(s.name)
        rows.append([Cell(s.name), Cell(f"{s.n:,}", "num"), Cell(pct(s.accuracy), "num"), Cell(_interval(s), "num"),
                     Cell(f"≥ {pct(bar.need)}" if bar else "", "num"),
                     verdict_cell(bar.passed) if bar else Cell("")])
    origin = " (difficulty from vote agreement)" if ev.difficulty_from_votes else ""
    return Figure(
        title="Held-out accuracy by difficulty",
        svg=charts.accuracy_bars(slices, ev.bars, "held-out accuracy by difficulty"),
        table=Table(["slice", "pairs", "accuracy", "95% CI", "bar", "verdict"], rows),
        caption=f"Pairs ranked right (ties count half){origin}; whiskers: {CI_NAME}; dashed marks: the bars.")


def calibration_blocks(ev: Evaluation) -> list[Block]:
    ece = f"ECE {ev.ece:.3f}" if ev.ece is not None else "ECE not reported"
    if not ev.calibration:
        return [Note(f"{ev.file} has no calibration bins ({ece}); an evaluation written by rewardgauge "
                     "'rm eval' now carries them for a reliability diagram.")]
    rows = [[Cell(f"{pct(b.lo)}–{pct(b.hi)}"), Cell(f"{b.n:,}", "num"), Cell(pct(b.confidence), "num"),
             Cell(pct(b.accuracy), "num"), Cell(f"{100 * (b.accuracy - b.confidence):+.1f} pts", "num")]
            for b in ev.calibration]
    return [Figure(
        title="Calibration (reliability diagram)",
        svg=charts.reliability_diagram(ev.calibration, "reliability diagram"),
        table=Table(["confidence", "pairs", "mean confidence", "accuracy", "accuracy − confidence"], rows),
        caption=f"{ece}. Bars: accuracy per confidence bin; dashed: perfectly calibrated; red: over-confidence "
                "(accuracy below the bin's mean confidence); grey strip: pairs per bin.")]


def _exploited(p: Probe) -> bool:
    """The reward model pays for an edit (by at least EXPLOIT_STD of its rewards' spread, where known) that the
    gold reward does not pay for: a direction RL can climb without getting better."""
    pays = p.change_std >= EXPLOIT_STD if p.change_std is not None else p.change > 0
    return pays and p.gold_change is not None and p.gold_change <= 0


def audit_figure(file: str, probes: list[Probe]) -> Figure:
    has_gold = any(p.gold_change is not None for p in probes)
    in_std = all(p.change_std is not None for p in probes)
    rows = [[Cell(p.name.replace("_", " ")), Cell(f"{p.n:,}", "num"), Cell(f"{p.change:+.3f}", "num"),
             Cell("-" if p.change_std is None else f"{p.change_std:+.2f}", "num"),
             Cell("-" if p.rose is None else pct(p.rose), "num"),
             Cell("-" if p.gold_change is None else f"{p.gold_change:+.3f}", "num"),
             Cell("pays, gold does not", "alert") if _exploited(p) else Cell("")] for p in probes]
    unit = "in standard deviations of its rewards" if in_std else "in its own units"
    gold = "; gold: the gold reward's change on the same edits" if has_gold else "; no gold reward for these data"
    return Figure(
        title="Audit: edits that add no content",
        svg=charts.audit_bars(probes, [p for p in probes if _exploited(p)], "audit: reward change per edit"),
        table=Table(["edit", "responses", "reward Δ", "reward Δ (std)", "rose", "gold Δ", "flag"], rows),
        caption=f"Mean reward change per edit ({file}). Reward model {unit}{gold}. Flagged in red: the reward "
                f"model pays for it (≥ {EXPLOIT_STD} std) and gold does not; RL will learn it.")


# --- sections ---------------------------------------------------------------------------------------------

def headline(run: Run) -> list[Section]:
    """The question the report answers first, its answer from the bars, and the three charts behind it."""
    section = Section("headline", "Is this reward model fit to optimise against?")
    ev = run.primary
    if ev is None:
        section.blocks.append(Verdict(
            verdict_cell(None), "No held-out evaluation in this run",
            remarks=["Evaluate the reward model with: rewardgauge rm eval --model RM --data HELDOUT "
                     "--out RUN/eval.json"]))
        return [section]
    checks = []
    remarks = []
    for b in ev.bars:
        s = b.slice
        got = f"{pct(b.accuracy)}" if b.accuracy is not None else "no pairs"
        detail = f" (95% CI {_interval(s)}, n = {s.n:,})" if s else ""
        checks.append((verdict_cell(b.passed), f"{b.name} pairs: {got}{detail}, needs ≥ {pct(b.need)}"))
        if s and b.passed is not None and s.low < b.need <= s.high:
            remarks.append(f"The {b.name} bar lies inside its 95% interval: more held-out {b.name} pairs "
                           "would settle it.")
    failed = [b for b in ev.bars if b.passed is False]
    if not ev.bars:
        text = "This evaluation checks no bars"
    elif failed:
        text = "No: " + "; ".join(f"{b.name} pairs {pct(b.accuracy)}, below the {pct(b.need)} bar" for b in failed)
    else:
        text = f"Yes by the bars: {', '.join(b.name for b in ev.bars)} held-out pairs clear them"
    audit = run.primary_audit
    if audit is not None:
        paid = [p.name.replace("_", " ") for p in audit[1] if _exploited(p)]
        if paid:
            remarks.insert(0, f"{'And' if failed else 'But'} the audit finds it pays for {len(paid)} "
                              f"edit{'s' if len(paid) > 1 else ''} that gold does not: {', '.join(paid)}. RL against "
                              "it can climb these without getting better (a KL penalty or a conservative ensemble "
                              "holds it back).")
    what = [f"model {ev.model}" if ev.model else "", f"data {ev.data}" if ev.data else "",
            f"{ev.overall.n:,} held-out pairs, accuracy {pct(ev.overall.accuracy)}"]
    remarks.append(f"From {ev.file}: " + ", ".join(w for w in what if w) + ".")
    section.blocks.append(Verdict(verdict_cell(ev.passed if ev.bars else None), text, checks, remarks))
    section.blocks.append(accuracy_figure(ev))
    section.blocks += calibration_blocks(ev)
    if audit is not None:
        section.blocks.append(audit_figure(*audit))
    else:
        section.blocks.append(Note("No audit in this run: rewardgauge rm audit --model RM --data PAIRS "
                                   "--out RUN/rm/audit.json shows what the reward model pays for."))
    return [section]


def problems(run: Run) -> list[Section]:
    if not run.notes:
        return []
    return [Section("notes", "Notes on the run's files", [Note(n) for n in run.notes])]


def summary(run: Run) -> list[Section]:
    root = run.folders[0] if run.folders and run.folders[0].rel == "." else None
    if root is None or not root.summary:
        return []
    items = [(label(k), value_cell(k, root.summary[k])) for k in summary_order([str(k) for k in root.summary])]
    return [Section("summary", "Run summary", [Facts(items)])]


def _ensemble_blocks(ens: dict) -> list[Block]:
    """Members beside their aggregate, and whether the members' disagreement predicts the aggregate's errors."""
    agg = ens.get("aggregate") or {}
    rows_in = [(str(m.get("name", i)), m) for i, m in enumerate(ens.get("members") or []) if isinstance(m, dict)]
    rows_in.append((f"aggregate ({agg.get('aggregator') or '?'})", agg))
    buckets = [b for b in DIFFICULTIES if any(b in (r.get("by_difficulty") or {}) for _, r in rows_in)]
    rows = [[Cell(name), Cell(pct(r.get("accuracy")), "num")]
            + [Cell(pct((r.get("by_difficulty") or {}).get(b)), "num") for b in buckets] for name, r in rows_in]
    blocks: list[Block] = [Table(["member", "accuracy", *buckets], rows, title="Ensemble members and aggregate")]
    unc = ens.get("uncertainty") or {}
    if unc:
        rows = [[Cell(label(name)), Cell(fmt(u.get("mean")), "num")]
                + [Cell(fmt((u.get("by_difficulty") or {}).get(b)), "num") for b in buckets]
                + [Cell(fmt(u.get("auroc_error")), "num")] for name, u in unc.items() if isinstance(u, dict)]
        blocks.append(Table(["uncertainty", "mean", *buckets, "AUROC for an error"], rows,
                            title="Disagreement by difficulty (AUROC 0.5 = no signal)"))
    if isinstance(ens.get("low_disagreement"), str):
        blocks.append(Paragraph(f"Warning: {ens['low_disagreement']}."))
    return blocks


def slices(run: Run) -> list[Section]:
    """The primary evaluation by aspect and by source, and its ensemble, where it has them."""
    ev = run.primary
    if ev is None:
        return []
    blocks = _slice_tables(ev)
    if ev.ensemble:
        blocks += _ensemble_blocks(ev.ensemble)
    return [Section("slices", "Held-out accuracy by aspect, source and ensemble member", blocks)] if blocks else []


def _slice_tables(ev: Evaluation) -> list[Block]:
    out: list[Block] = []
    for title, rows in (("By aspect", ev.by_aspect), ("By source", ev.by_source if len(ev.by_source) > 1 else [])):
        if rows:
            out.append(Table(["slice", "pairs", "accuracy", "95% CI"],
                             [[Cell(s.name), Cell(f"{s.n:,}", "num"), Cell(pct(s.accuracy), "num"),
                               Cell(_interval(s), "num")] for s in rows], title=title))
    return out


def other_evaluations(run: Run) -> list[Section]:
    out = []
    for i, ev in enumerate(e for e in run.evaluations if e is not run.primary):
        blocks: list[Block] = []
        if ev.bars:
            blocks.append(Paragraph("Bars: " + "; ".join(f"{b.name} {verdict_cell(b.passed).text}" for b in ev.bars)))
        blocks += [accuracy_figure(ev), *calibration_blocks(ev), *_slice_tables(ev)]
        if ev.ensemble:
            blocks += _ensemble_blocks(ev.ensemble)
        out.append(Section(f"evaluation-{i + 1}", f"Evaluation: {ev.file}", blocks))
    primary_audit = run.primary_audit
    for i, (file, probes) in enumerate(a for a in run.audits if a is not primary_audit):
        out.append(Section(f"audit-{i + 1}", f"Audit: {file}", [audit_figure(file, probes)]))
    return out


# The monitor's timeline: the reward RL optimised and the gold reward, from metrics.jsonl; on-policy accuracy
# per bucket (and the fixed held-out control) from monitor.jsonl.
REWARD_CURVES = (("reward_mean", "proxy reward", "proxy"), ("gold_mean", "gold reward", "gold"))
ONPOLICY_CURVES = (("monitor/onpolicy/easy/accuracy", "easy, on-policy", "proxy"),
                   ("monitor/onpolicy/hard/accuracy", "hard, on-policy", "other"),
                   ("monitor/onpolicy/fixed/easy/accuracy", "easy, fixed held-out", "gold"))


def monitor(run: Run) -> list[Section]:
    """Per folder with alarms.jsonl or monitor.jsonl (an RL run watched by the monitor): when each alarm fired,
    beside the proxy and gold rewards, and the proxy's accuracy on the policy's own samples."""
    out = []
    for f in run.folders:
        if f.alarms is None and f.monitor is None:
            continue
        blocks: list[Block] = []
        try:
            alarms = read_alarms(f.alarms or [])
        except ValueError as e:
            blocks.append(Note(f"{f.file('alarms.jsonl')}: {e}"))
            alarms = []
        series = f.metrics.series if f.metrics is not None else {}
        curves = [(name, series[key].steps, series[key].values, cls) for key, name, cls in REWARD_CURVES
                  if key in series]
        text = (f"{len(alarms)} alarm{'s' if len(alarms) != 1 else ''}; the first at step {alarms[0].step} "
                f"({alarms[0].detector}: {alarms[0].message})" if alarms else "No alarm.")
        if "gold_mean" in series:
            gold = series["gold_mean"]
            smooth = charts.ema(gold.values, charts.smoothing_span(len(gold.values)))
            peak = gold.steps[max(range(len(smooth)), key=smooth.__getitem__)]
            text += f" The gold reward (smoothed) peaked at step {fmt(peak)}"
            text += (f", {fmt(peak - alarms[0].step)} steps after the first alarm." if alarms and alarms[0].step <= peak
                     else ".")
        blocks.append(Paragraph(text))
        if curves or alarms:
            markers = [(a.step, f"step {a.step}: {a.detector} ({a.severity}, {a.action}): {a.message}", a.severity)
                       for a in alarms]
            rows = [[Cell(str(a.step), "num"), Cell(a.detector), Cell(a.severity, "alert" if a.severity == "critical"
                                                                          else "text"),
                     Cell(a.action + (f" to step {a.rollback_to}" if a.rollback_to is not None else "")),
                     Cell(a.message)] for a in alarms]
            blocks.append(Figure("Alarms beside the proxy and gold rewards",
                                 charts.timeline("reward and alarms", curves, markers, run.max_points),
                                 Table(["step", "detector", "severity", "action", "message"], rows),
                                 caption="Lines: the mean reward RL optimised (proxy) and the gold reward of the same "
                                         "samples, from metrics.jsonl; vertical marks: alarms (alarms.jsonl)."))
        m = f.monitor.series if f.monitor is not None else {}
        onpolicy = [(name, m[key].steps, m[key].values, cls) for key, name, cls in ONPOLICY_CURVES if key in m]
        if onpolicy:
            rows = [[Cell(name), Cell(fmt(values[0]), "num"), Cell(fmt(values[-1]), "num"), Cell(fmt(min(values)), "num")]
                    for name, _, values, _ in onpolicy]
            blocks.append(Figure("The proxy's accuracy on pairs of the policy's own samples",
                                 charts.timeline("on-policy accuracy", onpolicy, [], run.max_points),
                                 Table(["comparisons", "first", "last", "lowest"], rows),
                                 caption="Pairs sampled from the policy at each evaluation, labelled by the trusted "
                                         "labeller (monitor.jsonl); the fixed held-out set cannot move: it is the "
                                         "control."))
        where = f.rel if f.rel != "." else "run directory"
        out.append(Section(f"monitor-{_slug(f.rel)}", f"Reward-model health during RL: {where}", blocks))
    return out


def _curve_keys(series: dict) -> list[str]:
    keys = [k for k in series if k not in CLOCK_KEYS]
    rank = {k: i for i, k in enumerate(CURVE_ORDER)}
    return sorted(keys, key=lambda k: (rank.get(k, len(rank)), k))


def training(run: Run) -> list[Section]:
    """Per folder with a metrics.jsonl: a chart per metric (loss, accuracy, margin, grad norm, lr, others).
    The folder of the headline's evaluation comes first."""
    primary = (run.primary.file.rpartition("/")[0] or ".") if run.primary else None
    folders = sorted((f for f in run.folders if f.metrics is not None), key=lambda f: f.rel != primary)
    out = []
    for f in folders:
        m = f.metrics
        blocks: list[Block] = []
        for key in _curve_keys(m.series):
            s = m.series[key]
            table = Table(["points", "first step", "last step", "first", "last", "min", "max"],
                          [[Cell(str(len(s.values)), "num")] + [Cell(fmt(v), "num") for v in (
                              s.steps[0], s.steps[-1], s.values[0], s.values[-1], min(s.values), max(s.values))]])
            blocks.append(Figure(label(key), charts.line_chart(key, s.steps, s.values, run.max_points), table,
                                 caption=f"{key} in metrics.jsonl"))
        also = [k for k in CLOCK_KEYS if k in m.series or k in m.scalars]
        others = [f"{k} = {fmt(v)} ({'constant' if n > 1 else 'one point'})" for k, (v, n) in m.scalars.items()
                  if k not in CLOCK_KEYS]
        others += [f"{k} (not a number)" for k in m.text_keys]
        tail = []
        if also:
            tail.append(f"also logged: {', '.join(also)}")
        if others:
            tail.append(f"not plotted: {'; '.join(others)}")
        text = f"{f.file('metrics.jsonl')}: {m.rows:,} lines" + (f"; {'; '.join(tail)}" if tail else "")
        blocks.append(Paragraph(text))
        where = f.rel if f.rel != "." else "run directory"
        out.append(Section(f"training-{_slug(f.rel)}", f"Training curves: {where}", blocks))
    return out


def _points(m, key: str) -> dict[float, float]:
    """{step: value} of a metric, whether it varies (a series) or not (constant over its steps)."""
    if m is None:
        return {}
    if key in m.series:
        return dict(zip(m.series[key].steps, m.series[key].values))
    return {}


def _aligned(*columns: dict[float, float]) -> tuple[list[float], ...]:
    """The steps every column has, in order, and each column's values there."""
    steps = sorted(set.intersection(*(set(c) for c in columns))) if columns else []
    return (steps, *([c[s] for s in steps] for c in columns))


def _curve_table(columns: list[tuple[str, dict[float, float]]], steps: list[float]) -> Table:
    """First, last, min and max of each curve, with the step of its max."""
    rows = []
    for name, c in columns:
        values = [c[s] for s in steps if s in c]
        if not values:
            continue
        top = max((s for s in steps if s in c), key=c.__getitem__)
        rows.append([Cell(name), Cell(fmt(values[0]), "num"), Cell(fmt(values[-1]), "num"),
                     Cell(fmt(min(values)), "num"), Cell(fmt(max(values)), "num"), Cell(fmt(top), "num")])
    return Table(["curve", "first", "last", "min", "max", "step of max"], rows)


def _rollout_table(rows: list[dict], title: str) -> Table:
    has_gold = any("gold" in r for r in rows)
    columns = ["step", "prompt", "response", "reward"] + (["gold"] if has_gold else [])
    cells = [[Cell(fmt(r.get("step")), "num"), Cell(str(r.get("prompt", ""))), Cell(str(r.get("response", ""))),
              Cell(fmt(r.get("reward")), "num")] + ([Cell(fmt(r.get("gold")), "num")] if has_gold else [])
             for r in rows]
    return Table(columns, cells, title=title)


def _window_sentence(steps: list[float], proxy: list[float], gold: list[float], window: int) -> str:
    """Proxy and gold as means over ``window`` steps: the first, the one where gold is highest, the last."""
    w = max(1, min(window, len(steps)))
    last = len(steps) - w
    best = max(range(last + 1), key=lambda i: sum(gold[i:i + w]))

    def mean(v: list[float], i: int) -> str:
        return fmt(sum(v[i:i + w]) / w)

    def span(i: int) -> str:
        return f"steps {fmt(steps[i])}–{fmt(steps[i + w - 1])}"
    return (f"Means over {w} steps (one step's prompts are a small sample). Proxy reward (the reward model "
            f"optimised): {mean(proxy, 0)} over {span(0)}, {mean(proxy, best)} where gold is highest, "
            f"{mean(proxy, last)} over {span(last)}. Gold reward of the same samples: {mean(gold, 0)} → "
            f"{mean(gold, best)} ({span(best)}) → {mean(gold, last)}. Where the proxy keeps rising and gold "
            "falls, the policy is exploiting the reward model.")


def rl_runs(run: Run) -> list[Section]:
    """Per RL run (metrics.jsonl with reward_mean and response_length; a reward model's training logs a
    reward_mean too, but no response length): the proxy reward (what was optimised) beside the gold
    reward of the same samples, over steps and against √KL to the reference (Gao et al. 2022 plot both against
    √KL), response length and the style rates of the samples over steps, and rollouts at the start and end."""
    out = []
    for f in run.folders:
        m = f.metrics
        proxy = _points(m, "reward_mean")
        if not proxy or not _points(m, "response_length"):
            continue
        gold, kl, length = _points(m, "gold_mean"), _points(m, "kl_k3"), _points(m, "response_length")
        blocks: list[Block] = []
        steps = sorted(proxy)
        if gold:
            s, p, g = _aligned(proxy, gold)
            blocks.append(Paragraph(_window_sentence(s, p, g, RL_WINDOW)))
            blocks.append(Figure("Proxy and gold reward over steps",
                                 charts.paired_lines("reward", "step", s, ("proxy", p), ("gold", g), max_points=run.max_points),
                                 _curve_table([("proxy reward", proxy), ("gold reward", gold)], s),
                                 caption="reward_mean and gold_mean in metrics.jsonl (each on its own axis)."))
            if kl:
                s2, p2, g2, k2 = _aligned(proxy, gold, kl)
                root = [max(k, 0.0) ** 0.5 for k in k2]
                rows = [[Cell(fmt(s2[i]), "num"), Cell(fmt(root[i]), "num"), Cell(fmt(p2[i]), "num"),
                         Cell(fmt(g2[i]), "num")] for i in sorted({0, len(s2) // 4, len(s2) // 2, 3 * len(s2) // 4,
                                                                  len(s2) - 1})]
                blocks.append(Figure("Proxy and gold reward against √KL",
                                     charts.paired_lines("reward", "√KL (nats, k3 per response)", root, ("proxy", p2),
                                                         ("gold", g2), max_points=run.max_points),
                                     Table(["step", "√KL", "proxy", "gold"], rows),
                                     caption="√ of the KL to the reference (k3 estimate, summed over a response's "
                                             "tokens) and both rewards, each smoothed (EMA) and drawn in step order: reward against the "
                                             "distance the policy has moved."))
        else:
            blocks.append(Note(f"{f.file('metrics.jsonl')} has no gold_mean: no gold reward was logged beside the "
                               "proxy (the lab's prompts log it)."))
        style = f.style
        filler, opener = _points(style, "filler_rate"), _points(style, "opener_rate")
        if length:
            blocks.append(Figure("Response length over steps",
                                 charts.line_chart("response_length", sorted(length), [length[s] for s in sorted(length)],
                                                   run.max_points),
                                 _curve_table([("tokens per response", length)], sorted(length)),
                                 caption="response_length in metrics.jsonl (mean tokens per sampled response)."))
        if filler or opener:
            s, a, b = _aligned(filler or dict.fromkeys(opener, 0.0), opener or dict.fromkeys(filler, 0.0))
            blocks.append(Figure("Filler sentences and openers over steps",
                                 charts.paired_lines("rate", "step", s, ("filler", a), ("opener", b), shared_axis=True,
                                                     max_points=run.max_points),
                                 _curve_table([("share with a filler sentence", filler),
                                               ("share with an opener", opener)], s),
                                 caption=f"{f.file('style.jsonl')}: the share of each step's sampled responses with at "
                                         "least one filler sentence (\"i hope this helps .\") or opener (\"certainly !\")."))
        elif f.style is not None:
            constant = ", ".join(f"{k} {fmt(f.style.scalars[k][0])}" for k in ("filler_rate", "opener_rate")
                                 if k in f.style.scalars)
            blocks.append(Note(f"{f.file('style.jsonl')}: the filler and opener rates did not change over the "
                               f"steps ({constant or 'not logged'})."))
        for when in ("first", "last"):
            if when in f.samples:
                blocks.append(_rollout_table(f.samples[when], f"Rollouts at the {'start' if when == 'first' else 'end'}"
                                                              f" (step {fmt(f.samples[when][0].get('step'))})"))
        where = f.rel if f.rel != "." else "run directory"
        out.append(Section(f"rl-{_slug(f.rel)}", f"RL: {where}, {len(steps)} steps", blocks))
    return out


def lab_data(run: Run) -> list[Section]:
    """world.json: what the lab generated, its difficulty mix, annotators and gold reward."""
    out = []
    for f in run.folders:
        w = f.world
        if w is None:
            continue
        blocks: list[Block] = []
        if isinstance(w.get("files"), dict):
            blocks.append(Table(["file", "records"], [[Cell(str(k)), Cell(fmt(v), "num")] for k, v in w["files"].items()],
                                title="Files"))
        splits = {name: w[f"difficulty_{name}"] for name in ("train", "heldout")
                  if isinstance(w.get(f"difficulty_{name}"), dict)}
        if splits:
            cols = [b for b in (*DIFFICULTIES, "unlabelled", "tie") if any(b in d for d in splits.values())]
            cols += sorted({k for d in splits.values() for k in d} - set(cols))
            blocks.append(Table(["split", *cols], [[Cell(name)] + [Cell(fmt(d.get(c)), "num") for c in cols]
                                                   for name, d in splits.items()], title="Pairs by difficulty"))
        if isinstance(w.get("config"), dict):
            blocks.append(Facts([(str(k), Cell(fmt(v))) for k, v in w["config"].items()], title="Generator config"))
        annotators = w.get("annotators")
        if isinstance(annotators, list) and annotators and all(isinstance(a, dict) for a in annotators):
            cols = list(dict.fromkeys(k for a in annotators for k in a if k != "id" and not isinstance(a[k], dict)))
            nested = list(dict.fromkeys(f"{k}.{k2}" for a in annotators for k, v in a.items()
                                        if isinstance(v, dict) for k2 in v))
            rows = [[Cell(str(a.get("id", i)))] + [Cell(fmt(a.get(c)), "num") for c in cols]
                    + [Cell(fmt((a.get(c.split(".")[0]) or {}).get(c.split(".", 1)[1])), "num") for c in nested]
                    for i, a in enumerate(annotators)]
            blocks.append(Table(["annotator", *cols, *nested], rows, title=f"{len(annotators)} annotators",
                                collapsed=True))
        if "gold_reward" in w:
            blocks.append(Code(str(w["gold_reward"]), title="Gold reward", collapsed=True))
        where = f.rel if f.rel != "." else "run directory"
        out.append(Section(f"lab-{_slug(f.rel)}", f"Lab data: {where}", blocks))
    return out


def setup(run: Run) -> list[Section]:
    """Each folder's config.yaml and the files the report does not render, collapsed."""
    blocks: list[Block] = []
    for f in run.folders:
        where = f.rel if f.rel != "." else "run directory"
        if f.config is not None:
            blocks.append(Facts([(str(k), Cell(fmt(v))) for k, v in f.config.items()],
                                title=f"{f.file('config.yaml')} ({len(f.config)} keys)", collapsed=True))
        elif f.config_text is not None:
            blocks.append(Code(f.config_text, title=f.file("config.yaml"), collapsed=True))
        if f.others:
            rows = [[Cell(name), Cell(human_size(size), "num"), Cell("" if files is None else f"{files:,}", "num")]
                    for name, size, files in f.others]
            blocks.append(Table(["name", "size", "files"], rows, title=f"Other files: {where}", collapsed=True))
    return [Section("setup", "Configuration and files", blocks)] if blocks else []


def _slug(rel: str) -> str:
    return "root" if rel == "." else "".join(c if c.isalnum() else "-" for c in rel)


# In reading order. PRM runs will add their builders here.
BUILDERS: tuple[Callable[[Run], list[Section]], ...] = (
    headline, problems, summary, slices, other_evaluations, rl_runs, monitor, training, lab_data, setup)


def build_sections(run: Run) -> list[Section]:
    return [s for builder in BUILDERS for s in builder(run)]
