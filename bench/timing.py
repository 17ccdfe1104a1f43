"""Side-by-side timing helpers shared by the benchmarks."""
from __future__ import annotations

import statistics
import time
from typing import Callable


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def compare(label: str, ours: Callable[[], object], baseline: Callable[[], object], rounds: int = 3) -> float:
    """Alternate the two sides (after one warm-up each) and print medians and the ratio."""
    ours(), baseline()  # warm the page cache for both sides alike
    our_times, base_times = [], []
    for _ in range(rounds):
        our_times.append(timed(ours))
        base_times.append(timed(baseline))
    ours_s, base_s = statistics.median(our_times), statistics.median(base_times)
    ratio = ours_s / base_s
    print(f"{label:<44} ours {ours_s:8.3f} s   baseline {base_s:8.3f} s   ratio {ratio:5.2f}x")
    return ratio
