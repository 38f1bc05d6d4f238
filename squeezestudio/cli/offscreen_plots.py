"""PNG plots for command-line runs (``sweep``, ``sensitivity``), drawn with Pillow.

No Qt and no GUI module: the CLI calls only the core and this small renderer,
so the images come out on any headless machine. Each plot is a scatter or a
set of lines with ticks and a legend. The trade-off plot takes any two of
:data:`~squeezestudio.core.session.plot_axes.PLOT_METRICS` (sizes on a log
axis, as in the app), the Pareto frontier the caller computed with
:func:`~squeezestudio.core.session.plot_axes.plot_frontier` drawn as the
app's step line, and optionally a third metric as a viridis colour scale.
"""

from __future__ import annotations

import colorsys
import io
import math
from pathlib import Path
from typing import Optional, Sequence

from PIL import Image, ImageDraw, ImageFont

from squeezestudio.core.atomic_write import atomic_write_bytes
from squeezestudio.core.session.experiments import format_bytes
from squeezestudio.core.session.plot_axes import PlotMetric, frontier_steps, plot_metric

WIDTH, HEIGHT = 1200, 800
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 110, 230, 60, 90  # the legend lives in the right margin
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))
GREY, BLACK, FRONTIER = (200, 200, 200), (0, 0, 0), (214, 39, 40)
UNMEASURED = (175, 175, 175)  # a point without the colour metric (the app's grey too)
VIRIDIS = ((68, 1, 84), (71, 45, 123), (59, 82, 139), (44, 114, 142), (33, 145, 140), (40, 174, 128),
           (94, 201, 98), (173, 220, 48), (253, 231, 37))  # matplotlib's viridis at nine even stops


def _ticks(low: float, high: float, count: int = 6) -> list[float]:
    """Round tick values covering ``[low, high]``."""
    if not high > low:
        high = low + 1.0
    step = 10 ** math.floor(math.log10((high - low) / count))
    for factor in (1, 2, 5, 10):
        if (high - low) / (step * factor) <= count:
            step *= factor
            break
    first = math.floor(low / step) * step
    return [first + i * step for i in range(int(math.ceil((high - first) / step)) + 1)]


def _log_ticks(low: float, high: float) -> list[float]:
    """Ticks in log10 units at 1, 2 and 5 times a power of ten (decades alone when those crowd), covering the range."""
    if not high > low:
        low, high = low - 0.15, high + 0.15
    for mantissas in ((1, 2, 5), (1,)):
        candidates = [math.log10(m) + k for k in range(math.floor(low) - 1, math.ceil(high) + 2) for m in mantissas]
        first = max(c for c in candidates if c <= low + 1e-12)
        last = min(c for c in candidates if c >= high - 1e-12)
        ticks = [c for c in candidates if first - 1e-12 <= c <= last + 1e-12]
        if len(ticks) <= 10:
            break
    return ticks


class _Axes:
    """Data-to-pixel mapping plus the frame, grid, ticks and labels of one plot.

    With ``x_log``/``y_log`` the coordinates given are already log10 values:
    the ticks sit on round numbers of the original unit.
    """

    def __init__(self, draw: ImageDraw.ImageDraw, xs: Sequence[float], ys: Sequence[float], *,
                 invert_x: bool = False, x_format=lambda v: f"{v:g}", y_format=lambda v: f"{v:g}",
                 x_log: bool = False, y_log: bool = False) -> None:
        self.draw, self.font = draw, ImageFont.load_default()
        self.xt = (_log_ticks if x_log else _ticks)(min(xs, default=0.0), max(xs, default=1.0))
        self.yt = (_log_ticks if y_log else _ticks)(min(ys, default=0.0), max(ys, default=1.0))
        self.x0, self.x1, self.y0, self.y1 = self.xt[0], self.xt[-1], self.yt[0], self.yt[-1]
        self.invert_x = invert_x
        self.left, self.right = MARGIN_LEFT, WIDTH - MARGIN_RIGHT
        self.top, self.bottom = MARGIN_TOP, HEIGHT - MARGIN_BOTTOM
        for v in self.xt:
            x = self.px(v, self.y0)[0]
            draw.line([(x, self.top), (x, self.bottom)], fill=GREY)
            draw.text((x - 15, self.bottom + 8), x_format(v), fill=BLACK, font=self.font)
        for v in self.yt:
            y = self.px(self.x0, v)[1]
            draw.line([(self.left, y), (self.right, y)], fill=GREY)
            draw.text((self.left - 60, y - 6), y_format(v), fill=BLACK, font=self.font)
        draw.rectangle([self.left, self.top, self.right, self.bottom], outline=BLACK)

    def px(self, x: float, y: float) -> tuple[float, float]:
        fx = (x - self.x0) / ((self.x1 - self.x0) or 1.0)
        fx = 1.0 - fx if self.invert_x else fx
        fy = (y - self.y0) / ((self.y1 - self.y0) or 1.0)
        return self.left + fx * (self.right - self.left), self.bottom - fy * (self.bottom - self.top)

    def labels(self, title: str, x_label: str, y_label: str) -> None:
        self.draw.text((self.left, 20), title, fill=BLACK, font=self.font)
        self.draw.text(((self.left + self.right) / 2 - 60, HEIGHT - 40), x_label, fill=BLACK, font=self.font)
        self.draw.text((10, self.top - 30), y_label, fill=BLACK, font=self.font)

    def legend(self, entries: Sequence[tuple[str, tuple[int, int, int]]]) -> None:
        """Entries in the margin right of the frame, so the legend never covers data."""
        for i, (text, colour) in enumerate(entries):
            y = self.top + 10 + 16 * i
            self.draw.rectangle([self.right + 15, y, self.right + 25, y + 10], fill=colour)
            self.draw.text((self.right + 31, y - 1), text[:30], fill=BLACK, font=self.font)


def curve_colour(index: int, count: int) -> tuple[int, int, int]:
    """The palette for up to ten curves; beyond that evenly spaced hues, so no two curves share a colour."""
    if count <= len(PALETTE):
        return PALETTE[index]
    r, g, b = colorsys.hsv_to_rgb((index / count) % 1.0, 0.75 if index % 2 else 0.95, 0.85 if index % 2 else 0.65)
    return int(r * 255), int(g * 255), int(b * 255)


def _dot(draw: ImageDraw.ImageDraw, xy: tuple[float, float], colour: tuple[int, int, int], r: int = 5) -> None:
    draw.ellipse([xy[0] - r, xy[1] - r, xy[0] + r, xy[1] + r], fill=colour, outline=BLACK)


def _save(image: Image.Image, path: Path) -> int:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return atomic_write_bytes(path, buffer.getvalue())


def viridis(fraction: float) -> tuple[int, int, int]:
    """The viridis colour at ``fraction`` (0: dark purple, 1: yellow), interpolated between its stops."""
    f = min(max(fraction, 0.0), 1.0) * (len(VIRIDIS) - 1)
    i = min(int(f), len(VIRIDIS) - 2)
    a, b, t = VIRIDIS[i], VIRIDIS[i + 1], f - i
    return tuple(int(round(a[c] + (b[c] - a[c]) * t)) for c in range(3))  # type: ignore[return-value]


def _coordinate(metric: PlotMetric, value: float) -> float:
    """Where a value sits on its axis: sizes in log10 bytes, fractions in percent, the rest as they are."""
    return math.log10(value) if metric.unit == "bytes" else metric.shown(value)


def _tick_format(metric: PlotMetric):
    if metric.unit == "bytes":
        return lambda v: format_bytes(round(10 ** v))
    return (lambda v: f"{v:.0f}%") if metric.unit == "%" else (lambda v: f"{v:g}")


def _colour_bar(axes: _Axes, metric: PlotMetric, low: float, high: float, top: int) -> None:
    """A vertical viridis bar in the right margin, its ends labelled with the metric's values."""
    draw, left, bottom = axes.draw, axes.right + 20, axes.bottom
    draw.text((left, top - 18), metric.label[:32], fill=BLACK, font=axes.font)
    for y in range(top, bottom + 1):
        draw.line([(left, y), (left + 16, y)], fill=viridis((bottom - y) / max(1, bottom - top)))
    draw.rectangle([left, top, left + 16, bottom], outline=BLACK)
    label = (lambda v: format_bytes(v)) if metric.unit == "bytes" else metric.text
    for value, y in ((high, top), (low, bottom)):
        draw.text((left + 22, y - 6), label(value), fill=BLACK, font=axes.font)


def save_tradeoff_png(rows: Sequence, path: Path, x: str, y: str, front: Sequence[int],
                      colour: Optional[str] = None) -> int:
    """Metric ``y`` against metric ``x`` for sweep rows, the Pareto frontier ``front`` (row indices) as a step line.

    ``x``, ``y`` and ``colour`` are keys of
    :data:`~squeezestudio.core.session.plot_axes.PLOT_METRICS`. ``front`` is the
    frontier the caller printed and wrote for that pair (points at chance
    excluded there), so the picture and the table can never disagree. With
    ``colour`` the points take a viridis colour by that metric (grey where a
    row lacks it) and frontier points a red ring. Returns the bytes written.
    """
    mx, my = plot_metric(x), plot_metric(y)
    mc = plot_metric(colour) if colour else None
    shown = [(i, _coordinate(mx, vx), _coordinate(my, vy)) for i, r in enumerate(rows)
             if (vx := mx.value(r)) is not None and (vy := my.value(r)) is not None]
    on_front = set(front)
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    axes = _Axes(draw, [u for _, u, _ in shown], [v for _, _, v in shown], x_format=_tick_format(mx),
                 y_format=_tick_format(my), x_log=mx.unit == "bytes", y_log=my.unit == "bytes")
    line = sorted((u, v) for i, u, v in shown if i in on_front)
    xs, ys = frontier_steps(line, mx.smaller_is_better)
    if len(xs) > 1:
        draw.line([axes.px(u, v) for u, v in zip(xs, ys)], fill=FRONTIER, width=2)
    measured = {i: value for i, _, _ in shown if mc is not None and (value := mc.value(rows[i])) is not None}
    low, high = min(measured.values(), default=0.0), max(measured.values(), default=1.0)
    for i, u, v in shown:
        if mc is None:
            _dot(draw, axes.px(u, v), FRONTIER if i in on_front else PALETTE[0])
            continue
        fill = viridis((measured[i] - low) / ((high - low) or 1.0)) if i in measured else UNMEASURED
        if i in on_front:
            _dot(draw, axes.px(u, v), FRONTIER, r=8)
        _dot(draw, axes.px(u, v), fill)
    title = f"{my.label} against {mx.label[0].lower()}{mx.label[1:]} ({len(shown)} points)"
    axes.labels(title + (f", coloured by {mc.label[0].lower()}{mc.label[1:]}" if mc else ""), mx.title(), my.title())
    if mc is None:
        axes.legend([("Pareto frontier", FRONTIER), ("other points", PALETTE[0])])
    else:
        entries = [("Pareto frontier (ringed)", FRONTIER)] + ([("not measured", UNMEASURED)]
                                                             if len(measured) < len(shown) else [])
        axes.legend(entries)
        if measured:
            _colour_bar(axes, mc, low, high, top=axes.top + 16 * len(entries) + 50)
    return _save(image, path)


def save_curves_png(curves: dict[str, list[tuple[float, Optional[float]]]], path: Path, *,
                    title: str, x_label: str, baseline: Optional[float] = None,
                    invert_x: bool = False) -> int:
    """One line per layer (e.g. top-1 against sparsity), the baseline dashed; returns bytes written."""
    xs = [x for pts in curves.values() for x, y in pts if y is not None]
    ys = [y for pts in curves.values() for x, y in pts if y is not None] + ([baseline] if baseline is not None else [])
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    axes = _Axes(draw, xs, ys, invert_x=invert_x, y_format=lambda v: f"{v * 100:.0f}%")
    entries = []
    for i, (layer, pts) in enumerate(curves.items()):
        colour = curve_colour(i, len(curves))
        line = [axes.px(x, y) for x, y in sorted(pts) if y is not None]
        if len(line) > 1:
            draw.line(line, fill=colour, width=2)
        for xy in line:
            _dot(draw, xy, colour, r=4)
        entries.append((layer, colour))
    if baseline is not None:
        y = axes.px(axes.x0, baseline)[1]
        for x in range(int(axes.left), int(axes.right), 16):
            draw.line([(x, y), (min(x + 8, axes.right), y)], fill=BLACK, width=1)
        entries.append(("original model", BLACK))
    axes.labels(title, x_label, "top-1 accuracy")
    axes.legend(entries)
    return _save(image, path)
