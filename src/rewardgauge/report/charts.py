"""Inline SVG charts (no JavaScript, nothing fetched): accuracy bars with intervals, a reliability diagram,
the audit's paired bars, and line charts of a metric against step (downsampled, EMA over noisy series).

Each function returns escaped markup; the styling (colours, fonts) is in the page's CSS, by class.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

from rewardgauge.report.artefacts import BarCheck, CalibrationBin, Probe, Slice
from rewardgauge.report.formatting import fmt


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _svg(width: int, height: int, label: str, parts: list[str], cls: str = "chart") -> Markup:
    return Markup(f'<svg class="{cls}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
                  f'role="img" aria-label="{escape(label)}">' + "".join(parts) + "</svg>")


def _text(x: float, y: float, text: str, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f'<text{attr} x="{x:.1f}" y="{y:.1f}">{escape(text)}</text>'


# --- accuracy by slice -------------------------------------------------------------------------------------

def accuracy_bars(slices: Sequence[Slice], bars: Sequence[BarCheck], label: str) -> Markup:
    """Horizontal bars of accuracy per slice (0-100 %) with the 95 % interval as a whisker, the slice's count
    under its name, and each bar's threshold as a dashed mark on its row; a bar's colour is its verdict."""
    width, left, right, top, row = 380, 84, 50, 8, 42
    plot_w = width - left - right
    height = top + row * len(slices) + 26
    need = {b.name: b for b in bars}

    def sx(p: float) -> float:
        return left + p * plot_w

    parts = []
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<line class="{"chance" if tick == 0.5 else "grid"}" x1="{sx(tick):.1f}" x2="{sx(tick):.1f}" '
                     f'y1="{top}" y2="{top + row * len(slices)}"/>')
        parts.append(_text(sx(tick), height - 10, f"{100 * tick:.0f}%", "xlab mid"))
    for i, s in enumerate(slices):
        y = top + i * row
        mid = y + row / 2
        check = need.get(s.name)
        verdict = "neutral" if check is None or check.passed is None else ("pass" if check.passed else "fail")
        parts.append(_text(left - 8, mid - 2, s.name, "rowlab"))
        parts.append(_text(left - 8, mid + 11, f"n = {s.n:,}", "rowsub"))
        parts.append(f'<rect class="track" x="{sx(0):.1f}" y="{mid - 8:.1f}" width="{plot_w}" height="16"/>')
        parts.append(f'<rect class="bar {verdict}" x="{sx(0):.1f}" y="{mid - 8:.1f}" '
                     f'width="{max(0.0, s.accuracy * plot_w):.1f}" height="16"/>')
        lo, hi = sx(s.low), sx(s.high)
        parts.append(f'<path class="whisker" d="M{lo:.1f} {mid:.1f}H{hi:.1f}M{lo:.1f} {mid - 5:.1f}V{mid + 5:.1f}'
                     f'M{hi:.1f} {mid - 5:.1f}V{mid + 5:.1f}"/>')
        parts.append(_text(width - right + 6, mid + 4, _pct(s.accuracy), "val"))
        if check is not None:
            x = sx(check.need)
            parts.append(f'<line class="threshold" x1="{x:.1f}" x2="{x:.1f}" y1="{mid - 14:.1f}" y2="{mid + 14:.1f}"/>')
            parts.append(_text(x, mid - 15.5, f"bar {100 * check.need:.0f}%", "tlab"))
    return _svg(width, height, label, parts)


# --- calibration ------------------------------------------------------------------------------------------

def reliability_diagram(bins: Sequence[CalibrationBin], label: str) -> Markup:
    """Accuracy per bin of top-label confidence (bars) against the diagonal of perfect calibration; where a
    bin is over-confident, the gap up to its mean confidence is shaded red; a strip under the axis shows each
    bin's share of the pairs."""
    width, left, right, top, plot_h, strip = 380, 44, 18, 10, 168, 22
    plot_w = width - left - right
    height = top + plot_h + strip + 34
    total = sum(b.n for b in bins) or 1

    def sx(c: float) -> float:
        return left + (c - 0.5) / 0.5 * plot_w

    def sy(a: float) -> float:
        return top + (1 - a) * plot_h

    parts = []
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{sy(tick):.1f}" y2="{sy(tick):.1f}"/>')
        parts.append(_text(left - 5, sy(tick) + 3.5, f"{100 * tick:.0f}%", "ylab"))
    base = top + plot_h
    widest = max((b.n for b in bins), default=1)
    for b in bins:
        x0, x1 = sx(b.lo) + 1, sx(b.hi) - 1
        # the gap first: above an over-confident bin's bar it shows; inside an under-confident one the bar hides it
        g0, g1 = sorted((sy(b.accuracy), sy(b.confidence)))
        parts.append(f'<rect class="gap" x="{x0:.1f}" y="{g0:.1f}" width="{x1 - x0:.1f}" height="{g1 - g0:.1f}"/>')
        parts.append(f'<rect class="bar neutral" x="{x0:.1f}" y="{sy(b.accuracy):.1f}" width="{x1 - x0:.1f}" '
                     f'height="{base - sy(b.accuracy):.1f}"><title>{escape(_bin_title(b, total))}</title></rect>')
        h = (strip - 4) * b.n / widest
        parts.append(f'<rect class="share" x="{x0:.1f}" y="{base + strip - h:.1f}" width="{x1 - x0:.1f}" '
                     f'height="{h:.1f}"/>')
    parts.append(f'<line class="diagonal" x1="{sx(0.5):.1f}" y1="{sy(0.5):.1f}" x2="{sx(1):.1f}" y2="{sy(1):.1f}"/>')
    parts.append(f'<line class="axis" x1="{left}" x2="{width - right}" y1="{base}" y2="{base}"/>')
    for tick in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
        parts.append(_text(sx(tick), base + strip + 13, f"{100 * tick:.0f}%", "xlab mid"))
    parts.append(_text(left + plot_w / 2, height - 3, "confidence max(p, 1 − p), p = σ(margin)", "xlab mid"))
    parts.append(_text(left + 6, top + 12, "accuracy in bin", "xlab"))
    return _svg(width, height, label, parts)


def _bin_title(b: CalibrationBin, total: int) -> str:
    return (f"{_pct(b.lo)}-{_pct(b.hi)}: {b.n} pairs ({_pct(b.n / total)}), accuracy {_pct(b.accuracy)}, "
            f"confidence {_pct(b.confidence)}")


# --- audit ------------------------------------------------------------------------------------------------

def audit_bars(probes: Sequence[Probe], flagged: Sequence[Probe], label: str) -> Markup:
    """One row per probe, two panels on their own scales: the reward model's change (in standard deviations
    of its rewards where known) and the gold reward's change. The reward-model bars of ``flagged`` probes
    (it pays for an edit the gold reward does not) are red."""
    has_gold = any(p.gold_change is not None for p in probes)
    width, left, row, top = 380, 112, 28, 22
    panels = [("reward model", [p.change_std if p.change_std is not None else p.change for p in probes])]
    if has_gold:
        panels.append(("gold", [p.gold_change for p in probes]))
    gap = 14
    panel_w = (width - left - 4 - gap * (len(panels) - 1)) / len(panels)
    height = top + row * len(probes) + 6
    parts = []
    for i, p in enumerate(probes):
        parts.append(_text(left - 8, top + i * row + row / 2 + 4, p.name.replace("_", " "), "rowlab"))
    for k, (title, values) in enumerate(panels):
        x0 = left + k * (panel_w + gap)
        zero = x0 + panel_w / 2
        scale = max((abs(v) for v in values if v is not None), default=1.0) or 1.0
        reach = panel_w / 2 - 34  # room for the value label beyond the longest bar
        parts.append(_text(zero, 11, title, "panel"))
        parts.append(f'<line class="axis" x1="{zero:.1f}" x2="{zero:.1f}" y1="{top - 4}" y2="{height - 4}"/>')
        for i, (p, v) in enumerate(zip(probes, values)):
            mid = top + i * row + row / 2
            if v is None:
                parts.append(_text(zero + 4, mid + 4, "-", "val"))
                continue
            w = abs(v) / scale * reach
            cls = "gold" if title == "gold" else ("fail" if p in flagged else "neutral")
            if w > 0:
                x = zero if v >= 0 else zero - w
                parts.append(f'<rect class="bar {cls}" x="{x:.1f}" y="{mid - 7:.1f}" width="{w:.1f}" height="14"/>')
            tx, anchor = (zero + w + 4, "val") if v >= 0 else (zero - w - 4, "val end")
            parts.append(_text(tx, mid + 4, f"{v:+.2f}", anchor))
    return _svg(width, height, label, parts)


# --- metrics against step ---------------------------------------------------------------------------------

WIDTH, HEIGHT = 320, 170
_LEFT, _RIGHT, _TOP, _BOTTOM = 54, 10, 10, 22  # margins for the axis labels


def tick(y: float) -> str:
    """An axis label of at most about 8 characters: 3 significant digits, scientific outside 1e-3..1e5."""
    if y == 0 or 1e-3 <= abs(y) < 1e5:
        return f"{y:.3g}"
    return f"{y:.2e}".replace("e-0", "e-").replace("e+0", "e")


def ema(values: Sequence[float], span: float) -> list[float]:
    """Exponential moving average s_t = s_{t-1} + α (x_t − s_{t-1}), α = 2 / (span + 1), started at x_0
    (so the curve is not pulled toward 0 at the start, unlike a zero-initialised EMA)."""
    if not values:
        return []
    alpha = 2.0 / (span + 1.0)
    s = values[0]
    out = []
    for x in values:
        s += alpha * (x - s)
        out.append(s)
    return out


def smoothing_span(n: int) -> float:
    """About 2.5 % of the run: a window that follows trends at any run length."""
    return max(3.0, n / 40)


def is_noisy(values: Sequence[float]) -> bool:
    """A series is noisy when its total variation is well above its range: a monotone or warm-up-then-decay
    curve (a learning-rate schedule) has a ratio of 1-2, step-to-step noise makes it large."""
    if len(values) < 10:
        return False
    spread = max(values) - min(values)
    variation = sum(abs(b - a) for a, b in zip(values, values[1:]))
    return spread > 0 and variation > 4 * spread


def downsample_minmax(xs: Sequence[float], ys: Sequence[float], max_points: int) -> tuple[list[float], list[float]]:
    """At most ``max_points`` points: the minimum and maximum of each of ``max_points // 2`` equal index
    buckets, in order, so spikes (a loss blow-up) survive downsampling, unlike with a plain stride."""
    n = len(ys)
    if n <= max_points:
        return list(xs), list(ys)
    buckets = max(1, max_points // 2)
    out_x: list[float] = []
    out_y: list[float] = []
    for b in range(buckets):
        lo, hi = b * n // buckets, (b + 1) * n // buckets
        i_min = min(range(lo, hi), key=ys.__getitem__)
        i_max = max(range(lo, hi), key=ys.__getitem__)
        for i in sorted({i_min, i_max}):
            out_x.append(xs[i])
            out_y.append(ys[i])
    return out_x, out_y


def downsample_stride(xs: Sequence[float], ys: Sequence[float], max_points: int) -> tuple[list[float], list[float]]:
    """At most ``max_points`` evenly spaced points, the last one included (for smooth curves such as an EMA)."""
    n = len(ys)
    if n <= max_points:
        return list(xs), list(ys)
    idx = [round(i * (n - 1) / (max_points - 1)) for i in range(max_points)]
    return [xs[i] for i in idx], [ys[i] for i in idx]


def _polyline(xs: Sequence[float], ys: Sequence[float], sx: Callable, sy: Callable, cls: str) -> str:
    pts = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ys))
    return f'<polyline class="{cls}" points="{pts}"/>'


def line_chart(name: str, steps: Sequence[float], values: Sequence[float], max_points: int = 500) -> Markup:
    """An SVG chart of ``values`` against ``steps`` (at least two points, sorted by step). Noisy series get
    the raw points as a faint line and an EMA on top; each drawn line has at most ``max_points`` points."""
    x0, x1 = steps[0], steps[-1]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 1.0
    y0, y1 = lo - pad, hi + pad
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM

    def sx(x: float) -> float:
        return _LEFT + (x - x0) / ((x1 - x0) or 1) * plot_w

    def sy(y: float) -> float:
        return _TOP + (y1 - y) / (y1 - y0) * plot_h

    parts = []
    for y in (lo, (lo + hi) / 2, hi):
        parts.append(f'<line class="grid" x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{sy(y):.1f}" y2="{sy(y):.1f}"/>'
                     + _text(_LEFT - 4, sy(y) + 3, tick(y), "ylab"))
    parts.append(_text(_LEFT, HEIGHT - 6, fmt(x0), "xlab") + _text(WIDTH - _RIGHT, HEIGHT - 6, fmt(x1), "xlab end")
                 + _text(_LEFT + plot_w / 2, HEIGHT - 6, "step", "xlab mid"))
    noisy = is_noisy(values)
    rx, ry = downsample_minmax(steps, values, max_points)
    parts.append(_polyline(rx, ry, sx, sy, "raw" if noisy else "line"))
    if noisy:
        ex, ey = downsample_stride(steps, ema(values, smoothing_span(len(values))), max_points)
        parts.append(_polyline(ex, ey, sx, sy, "ema"))
    elif len(rx) <= 40:
        parts.append("".join(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2"/>' for x, y in zip(rx, ry)))
    return _svg(WIDTH, HEIGHT, f"{name} against step", parts)


# --- the monitor's timeline --------------------------------------------------------------------------------

TIMELINE_W, TIMELINE_H = 640, 220


def timeline(name: str, curves: Sequence[tuple[str, Sequence[float], Sequence[float], str]],
             markers: Sequence[tuple[float, str, str]], max_points: int = 500) -> Markup:
    """Several series against step on one axis (``(label, steps, values, css class)``, each drawn as an EMA
    over its faint raw points when noisy) and vertical markers ``(step, tooltip, css class)``: the alarms
    beside the proxy and gold rewards."""
    xs = [x for _, steps, _, _ in curves for x in steps] + [m[0] for m in markers]
    ys = [y for _, _, values, _ in curves for y in values]
    x0, x1 = min(xs), max(xs)
    lo, hi = (min(ys), max(ys)) if ys else (0.0, 1.0)
    pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 1.0
    y0, y1 = lo - pad, hi + pad
    top = _TOP + 14  # room for the legend
    plot_w, plot_h = TIMELINE_W - _LEFT - _RIGHT, TIMELINE_H - top - _BOTTOM

    def sx(x: float) -> float:
        return _LEFT + (x - x0) / ((x1 - x0) or 1) * plot_w

    def sy(y: float) -> float:
        return top + (y1 - y) / (y1 - y0) * plot_h

    parts = []
    for y in (lo, (lo + hi) / 2, hi):
        parts.append(f'<line class="grid" x1="{_LEFT}" x2="{TIMELINE_W - _RIGHT}" y1="{sy(y):.1f}" y2="{sy(y):.1f}"/>'
                     + _text(_LEFT - 4, sy(y) + 3, tick(y), "ylab"))
    parts.append(_text(_LEFT, TIMELINE_H - 6, fmt(x0), "xlab") + _text(TIMELINE_W - _RIGHT, TIMELINE_H - 6, fmt(x1),
                                                                      "xlab end")
                 + _text(_LEFT + plot_w / 2, TIMELINE_H - 6, "step", "xlab mid"))
    for step, tip, cls in markers:
        parts.append(f'<line class="marker {cls}" x1="{sx(step):.1f}" x2="{sx(step):.1f}" y1="{top}" '
                     f'y2="{top + plot_h}"><title>{escape(tip)}</title></line>')
    legend_x = _LEFT
    for label_, steps, values, cls in curves:
        if len(values) >= 2:
            noisy = is_noisy(values)
            rx, ry = downsample_minmax(steps, values, max_points)
            parts.append(_polyline(rx, ry, sx, sy, f"series {cls}" + (" faint" if noisy else "")))
            if noisy:
                ex, ey = downsample_stride(steps, ema(values, smoothing_span(len(values))), max_points)
                parts.append(_polyline(ex, ey, sx, sy, f"series {cls}"))
        parts.append(f'<line class="series {cls}" x1="{legend_x}" x2="{legend_x + 14}" y1="{_TOP + 2}" '
                     f'y2="{_TOP + 2}"/>' + _text(legend_x + 18, _TOP + 6, label_))
        legend_x += 30 + 6.2 * len(label_)
    if markers:
        parts.append(f'<line class="marker warning" x1="{legend_x}" x2="{legend_x}" y1="{_TOP - 4}" '
                     f'y2="{_TOP + 8}"/>' + _text(legend_x + 5, _TOP + 6, "alarm"))
    return _svg(TIMELINE_W, TIMELINE_H, f"{name} against step", parts)


# --- two series on one chart --------------------------------------------------------------------------------

PAIR_WIDTH, PAIR_HEIGHT = 420, 190
_PAIR_LEFT, _PAIR_RIGHT, _PAIR_TOP, _PAIR_BOTTOM = 50, 50, 22, 22


def paired_lines(name: str, x_name: str, xs: Sequence[float], left: tuple[str, Sequence[float]],
                 right: tuple[str, Sequence[float]], shared_axis: bool = False, max_points: int = 500) -> Markup:
    """Two series against one x, the first on the left axis (blue), the second on the right axis (gold), each
    on its own scale unless ``shared_axis``. Noisy series are drawn as an EMA over faint raw points. An x that
    does not grow (e.g. √KL over steps: a path) is smoothed like the series, and only the smoothed path is
    drawn (raw points in step order would zigzag across the chart). The legend names both."""
    path = any(b < a for a, b in zip(xs, xs[1:]))
    if path:
        span = max(5.0, len(xs) / 8)  # a path wants more smoothing than a curve over steps
        xs, left, right = ema(xs, span), (left[0], ema(left[1], span)), (right[0], ema(right[1], span))
    plot_w = PAIR_WIDTH - _PAIR_LEFT - _PAIR_RIGHT
    plot_h = PAIR_HEIGHT - _PAIR_TOP - _PAIR_BOTTOM
    x0, x1 = min(xs), max(xs)

    def sx(x: float) -> float:
        return _PAIR_LEFT + (x - x0) / ((x1 - x0) or 1) * plot_w

    def scale(values: Sequence[float]) -> tuple[float, float]:
        lo, hi = min(values), max(values)
        pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 1.0
        return lo - pad, hi + pad

    ranges = [scale(left[1]), scale(right[1])]
    if shared_axis:
        both = scale([*left[1], *right[1]])
        ranges = [both, both]
    parts = []
    for side, ((label, ys), (y0, y1), cls) in enumerate(zip((left, right), ranges, ("pair-a", "pair-b"))):
        def sy(y: float, y0=y0, y1=y1) -> float:
            return _PAIR_TOP + (y1 - y) / (y1 - y0) * plot_h

        if side == 0 or not shared_axis:
            for y in (y0 + (y1 - y0) * 0.05, (y0 + y1) / 2, y1 - (y1 - y0) * 0.05):
                if side == 0:
                    parts.append(f'<line class="grid" x1="{_PAIR_LEFT}" x2="{PAIR_WIDTH - _PAIR_RIGHT}" '
                                 f'y1="{sy(y):.1f}" y2="{sy(y):.1f}"/>' + _text(_PAIR_LEFT - 4, sy(y) + 3, tick(y), "ylab"))
                else:
                    parts.append(_text(PAIR_WIDTH - _PAIR_RIGHT + 4, sy(y) + 3, tick(y), "ylab right"))
        if not path and is_noisy(ys):
            parts.append(_polyline(*downsample_stride(xs, ys, max_points), sx, sy, f"{cls} raw-pair"))
            parts.append(_polyline(*downsample_stride(xs, ema(ys, smoothing_span(len(ys))), max_points), sx, sy,
                                   f"{cls} ema-pair"))
        else:
            parts.append(_polyline(*downsample_stride(xs, ys, max_points), sx, sy, f"{cls} line-pair"))
        legend_x = _PAIR_LEFT + side * plot_w / 2
        parts.append(f'<line class="{cls} line-pair" x1="{legend_x:.1f}" x2="{legend_x + 16:.1f}" y1="9" y2="9"/>'
                     + _text(legend_x + 20, 12, f"{label} ({'left' if side == 0 else 'right'} axis)"
                             if not shared_axis else label, "legend"))
    parts.append(_text(_PAIR_LEFT, PAIR_HEIGHT - 6, tick(x0), "xlab")
                 + _text(PAIR_WIDTH - _PAIR_RIGHT, PAIR_HEIGHT - 6, tick(x1), "xlab end")
                 + _text(_PAIR_LEFT + plot_w / 2, PAIR_HEIGHT - 6, x_name, "xlab mid"))
    return _svg(PAIR_WIDTH, PAIR_HEIGHT, f"{left[0]} and {right[0]} against {x_name}", parts)
