"""Interleaved timing: native and unirun calls alternate in rounds, so drift hits both alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def per_call_seconds(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def compare(
    candidates: dict[str, Callable[[], object]], budget_s: float = 2.0, rounds: int = 9
) -> dict[str, float]:
    """Median per-call seconds of each candidate over ``rounds`` interleaved rounds."""
    for fn in candidates.values():  # warm-up
        for _ in range(5):
            fn()
    first = next(iter(candidates.values()))
    one = per_call_seconds(first, 20)
    calls = max(10, int(budget_s / rounds / len(candidates) / max(one, 1e-7)))
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            samples[name].append(per_call_seconds(fn, calls))
    return {name: statistics.median(values) for name, values in samples.items()}
