"""PNG plots for command-line runs (``sweep``, ``sensitivity``), drawn with Pillow.

No Qt and no GUI module: the CLI calls only the core and this small renderer,
so the images come out on any headless machine. Each plot is a scatter or a
set of lines on linear axes with ticks, a legend and, for the trade-off plot,
the Pareto frontier (:func:`squeezestudio.core.session.experiments.pareto_frontier`,
the one the desktop app draws).
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

WIDTH, HEIGHT = 1200, 800
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 110, 230, 60, 90  # the legend lives in the right margin
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))
GREY, BLACK, FRONTIER = (200, 200, 200), (0, 0, 0), (214, 39, 40)


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


class _Axes:
    """Data-to-pixel mapping plus the frame, grid, ticks and labels of one plot."""

    def __init__(self, draw: ImageDraw.ImageDraw, xs: Sequence[float], ys: Sequence[float], *,
                 invert_x: bool = False, x_format=lambda v: f"{v:g}", y_format=lambda v: f"{v:g}") -> None:
        self.draw, self.font = draw, ImageFont.load_default()
        self.xt, self.yt = _ticks(min(xs, default=0.0), max(xs, default=1.0)), _ticks(min(ys, default=0.0),
                                                                                       max(ys, default=1.0))
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


def save_tradeoff_png(rows: Sequence, path: Path, metric: str, front: Sequence[int]) -> int:
    """Size against ``metric`` for sweep rows, the Pareto frontier ``front`` (row indices) joined.

    ``front`` is the frontier the caller printed and wrote (points at chance excluded there), so the
    picture and the table can never disagree. Returns the bytes written.
    """
    shown = [(i, float(r.size_bytes), float(r.metrics[metric])) for i, r in enumerate(rows)
             if r.metrics.get(metric) is not None]
    on_front = set(front)
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    axes = _Axes(draw, [x for _, x, _ in shown], [y for _, _, y in shown], x_format=lambda v: format_bytes(int(v)),
                 y_format=lambda v: f"{v * 100:.0f}%")
    line = sorted((x, y) for i, x, y in shown if i in on_front)
    if len(line) > 1:
        draw.line([axes.px(x, y) for x, y in line], fill=FRONTIER, width=2)
    for i, x, y in shown:
        _dot(draw, axes.px(x, y), FRONTIER if i in on_front else PALETTE[0])
    axes.labels(f"{metric} against the exact .sqz size ({len(shown)} points)", ".sqz size", metric)
    axes.legend([("Pareto frontier", FRONTIER), ("other points", PALETTE[0])])
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
