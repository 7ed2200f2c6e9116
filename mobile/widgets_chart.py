"""A line chart drawn with Kivy graphics: measures over time, with axes, grid, labels and a legend.

The arithmetic (readable ticks, scaling) lives in plain functions so it can be checked without a
window; :class:`LineChart` only draws what they computed. Colours and sizes come from the theme.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from kivy.clock import Clock
from kivy.core.text import Label as CoreLabel
from kivy.graphics import Color, Ellipse, Line, Rectangle
from kivy.metrics import dp
from kivy.properties import ListProperty, StringProperty
from kivy.uix.widget import Widget
from kivy.utils import get_color_from_hex

from mobile import i18n, theme

# Distinct on white and for the common colour-vision deficiencies (Okabe–Ito blue and vermilion).
SERIES_COLOURS = (theme.PRIMARY, get_color_from_hex("#D55E00"), get_color_from_hex("#009E73"))


@dataclass(frozen=True)
class Series:
    label: str
    points: tuple[tuple[dt.datetime, float], ...]


def nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    """About ``count`` round values covering [low, high] (steps of 1, 2, 2.5 or 5 × 10ⁿ)."""
    if not math.isfinite(low) or not math.isfinite(high):
        return []
    if high < low:
        low, high = high, low
    if high == low:
        spread = abs(high) * 0.1 or 1.0
        low, high = low - spread, high + spread
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value < high + step * 0.5:
        ticks.append(round(value, 10))
        value += step
        if len(ticks) > 20:
            break
    if ticks[-1] < high:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def format_number(value: float) -> str:
    """French decimals: 72.5 → '72,5', 71.0 → '71'."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text.replace(".", ",") if text != "-0" else "0"


def parse_series(raw: dict, labels: dict[str, str]) -> list[Series]:
    """The API's ``series`` ({name: [[iso, value], …]}) as :class:`Series`, in ``labels`` order."""
    out = []
    for name, label in labels.items():
        points = []
        for when, value in raw.get(name) or []:
            try:
                moment = dt.datetime.fromisoformat(str(when).replace("Z", "+00:00"))
            except ValueError:
                continue
            if value is None:
                continue
            points.append((moment, float(value)))
        out.append(Series(label, tuple(sorted(points))))
    return out


class LineChart(Widget):
    """``series``: a list of :class:`Series`. ``unit`` is written above the value axis;
    ``empty_text`` is shown when there is nothing to draw."""

    series = ListProperty([])
    unit = StringProperty("")
    empty_text = StringProperty("")

    def __init__(self, **kwargs):
        self._redraw = Clock.create_trigger(self.redraw, -1)
        super().__init__(**kwargs)
        self.bind(pos=self._redraw, size=self._redraw, series=self._redraw, unit=self._redraw,
                  empty_text=self._redraw)

    @staticmethod
    def _text(text: str, size: float = theme.FONT_SMALL, colour=theme.TEXT_MUTED, bold: bool = False):
        label = CoreLabel(text=text, font_size=size, bold=bold, color=colour)
        label.refresh()
        return label.texture

    def _blit(self, texture, x: float, y: float) -> None:
        Color(1, 1, 1, 1)
        Rectangle(texture=texture, pos=(round(x), round(y)), size=texture.size)

    def redraw(self, *_args) -> None:
        self.canvas.clear()
        points = [p for s in self.series for p in s.points]
        with self.canvas:
            Color(*theme.SURFACE)
            Rectangle(pos=self.pos, size=self.size)
            if not points or self.width < dp(80) or self.height < dp(60):
                if self.empty_text:
                    texture = self._text(self.empty_text, theme.FONT_BODY)
                    self._blit(texture, self.center_x - texture.width / 2, self.center_y - texture.height / 2)
                return
            self._draw(points)

    def _draw(self, points: list[tuple[dt.datetime, float]]) -> None:
        values = [v for _, v in points]
        legend = len(self.series) > 1
        top_room = dp(32) + (dp(22) if legend else 0)
        ticks = nice_ticks(min(values), max(values))
        y_low, y_high = ticks[0], ticks[-1]
        tick_textures = [self._text(format_number(t)) for t in ticks]
        left = self.x + max(t.width for t in tick_textures) + dp(10)
        right = self.right - dp(14)
        bottom = self.y + dp(26)
        top = self.top - top_room
        if right - left < dp(40) or top - bottom < dp(30):
            return

        moments = [m for m, _ in points]
        start, end = min(moments), max(moments)
        span = (end - start).total_seconds()

        def sx(moment: dt.datetime) -> float:
            if span <= 0:
                return (left + right) / 2
            return left + (moment - start).total_seconds() / span * (right - left)

        def sy(value: float) -> float:
            return bottom + (value - y_low) / ((y_high - y_low) or 1) * (top - bottom)

        # unit above the value axis
        if self.unit:
            texture = self._text(self.unit, bold=True)
            self._blit(texture, self.x, self.top - texture.height - dp(2))
        # grid and value labels; on a short chart every other label, so they never crowd each other
        spacing = (top - bottom) / max(1, len(ticks) - 1)
        every = 1 if spacing >= dp(24) else 2
        for index, (tick, texture) in enumerate(zip(ticks, tick_textures, strict=True)):
            y = sy(tick)
            Color(*theme.BORDER)
            Line(points=[left, y, right, y], width=1)
            if index % every == 0:
                self._blit(texture, left - dp(6) - texture.width, y - texture.height / 2)
        # axes
        Color(*theme.TEXT_MUTED)
        Line(points=[left, top, left, bottom, right, bottom], width=dp(1))
        # dates under the time axis: first, last, and the middle when there is room
        marks = [start] if span <= 0 else [start, end]
        if span > 0 and right - left > dp(220):
            marks.insert(1, start + (end - start) / 2)
        for moment in marks:
            local = i18n.local(moment) if moment.tzinfo else moment
            texture = self._text(local.strftime("%d/%m/%y"))
            x = min(max(sx(moment) - texture.width / 2, left - dp(4)), self.right - texture.width)
            Color(*theme.TEXT_MUTED)
            Line(points=[sx(moment), bottom, sx(moment), bottom - dp(4)], width=1)
            self._blit(texture, x, self.y + dp(2))
        # the lines and their points
        for index, series in enumerate(self.series):
            if not series.points:
                continue
            colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
            xy = [c for m, v in series.points for c in (sx(m), sy(v))]
            Color(*colour)
            if len(series.points) > 1:
                Line(points=xy, width=dp(1.6))
            radius = dp(3.5)
            for m, v in series.points:
                Ellipse(pos=(sx(m) - radius, sy(v) - radius), size=(radius * 2, radius * 2))
        # legend
        if legend:
            x = left
            y = self.top - dp(46)
            for index, series in enumerate(self.series):
                colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
                Color(*colour)
                Rectangle(pos=(x, y + dp(4)), size=(dp(14), dp(10)))
                texture = self._text(series.label, colour=theme.TEXT)
                self._blit(texture, x + dp(20), y + dp(9) - texture.height / 2)
                x += dp(34) + texture.width


__all__ = ["LineChart", "Series", "format_number", "nice_ticks", "parse_series"]
