"""The one timing loop behind ``backend="fastest"``, ``unirun run`` and ``unirun bench``."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["Timing", "time_calls"]


@dataclass(frozen=True)
class Timing:
    """Seconds per call, in the order the calls ran (warm-up calls excluded)."""

    seconds: tuple[float, ...]

    @property
    def runs(self) -> int:
        return len(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def total(self) -> float:
        return sum(self.seconds)

    def percentiles(self, *qs: float) -> tuple[float, ...]:
        return tuple(float(v) for v in np.percentile(self.seconds, qs))


def time_calls(
    call: Callable[[], object],
    *,
    warmup: int = 0,
    runs: int | None = None,
    budget: float | None = None,
    min_runs: int = 1,
    max_runs: int | None = None,
    tick: Callable[[], object] | None = None,
) -> Timing:
    """Call ``call`` ``warmup`` times untimed, then time each call: exactly ``runs`` calls, or
    at least ``min_runs`` and then more while ``budget`` seconds last (at most ``max_runs``).
    ``tick`` runs after every timed call (a progress bar), outside the timed span."""
    if runs is None and budget is None:
        raise ValueError("give runs or budget")
    for _ in range(warmup):
        call()
    low, high = (runs, runs) if runs is not None else (min_runs, max_runs)
    seconds: list[float] = []
    clock = time.perf_counter
    deadline = clock() + (budget or 0.0)
    while len(seconds) < max(low, 1) or (
        runs is None and clock() < deadline and (high is None or len(seconds) < high)
    ):
        start = clock()
        call()
        seconds.append(clock() - start)
        if tick is not None:
            tick()
    return Timing(tuple(seconds))
