"""Small server-rendered SVG charts: no script, fine under the CSP, testable as text."""
from __future__ import annotations

from dataclasses import dataclass

WIDTH, HEIGHT, PAD = 560, 120, 6


@dataclass(frozen=True)
class LineChart:
    title: str
    unit: str
    path: str  # SVG path data; "" when there is nothing to draw
    points: list[tuple[float, float]]
    low: float | None
    high: float | None
    last: float | None
    width: int = WIDTH
    height: int = HEIGHT
    single: bool = False  # one reading so far: drawn as a level line across the chart


def line_chart(title: str, values: list[float | None], unit: str = "") -> LineChart:
    """Values over ticks; a None (a missed tick, a failed probe) breaks the line."""
    known = [v for v in values if v is not None]
    if not known:
        return LineChart(title, unit, "", [], None, None, None)
    if len(known) == 1:
        # One reading is a level, not a dot lost in a corner: a flat line across the chart.
        y = HEIGHT / 2
        return LineChart(title, unit, f"M{PAD},{y:.1f} L{WIDTH - PAD},{y:.1f}", [], known[0], known[0], known[0],
                         single=True)
    low, high = min(known), max(known)
    span = high - low
    step = (WIDTH - 2 * PAD) / max(len(values) - 1, 1)
    points, path, pen_down = [], [], False
    for index, value in enumerate(values):
        if value is None:
            pen_down = False
            continue
        x = PAD + index * step
        # A constant series is drawn through the middle, not along the floor.
        y = HEIGHT / 2 if not span else HEIGHT - PAD - (value - low) / span * (HEIGHT - 2 * PAD)
        path.append(f"{'L' if pen_down else 'M'}{x:.1f},{y:.1f}")
        points.append((round(x, 1), round(y, 1)))
        pen_down = True
    return LineChart(title, unit, " ".join(path), points, low, high, known[-1])


@dataclass(frozen=True)
class Cell:
    x: float
    state: str
    label: str


def tick_strip(samples: list, width: int = WIDTH) -> tuple[list[Cell], float]:
    """One cell per tick, coloured by its state (passed, failed, missed, running)."""
    size = max(min((width - 2 * PAD) / max(len(samples), 1), 24.0), 2.0)
    cells = [Cell(PAD + i * size, s.state, f"tick {s.tick} at {s.due_at:%H:%M}: {s.state}") for i, s in enumerate(samples)]
    return cells, size
