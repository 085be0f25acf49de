"""Interleaved timing: the candidates alternate in rounds, so drift (other processes, turbo,
thermal) hits each alike. Every figure is a median over rounds, reported with its spread."""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Stats:
    """Median and spread of one candidate's samples (seconds)."""

    median: float
    low: float  # first quartile
    high: float  # third quartile
    n: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        ordered = sorted(samples)
        if any(math.isnan(v) for v in ordered):
            return cls(math.nan, math.nan, math.nan, len(ordered))
        if len(ordered) < 2:
            return cls(ordered[0], ordered[0], ordered[0], len(ordered))
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
        return cls(statistics.median(ordered), q1, q3, len(ordered))

    def ms(self) -> str:
        if math.isnan(self.median):
            return "n/a"
        return f"{self.median * 1e3:.1f} ({self.low * 1e3:.1f}–{self.high * 1e3:.1f})"

    def times(self) -> str:
        """As a ratio: ``1.31× (1.25–1.40)``."""
        return f"{self.median:.2f}× ({self.low:.2f}–{self.high:.2f})"

    def us(self) -> str:
        return f"{self.median * 1e6:.2f} ({self.low * 1e6:.2f}–{self.high * 1e6:.2f})"


def per_call_seconds(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def compare_samples(
    candidates: Mapping[str, Callable[[], object]], budget_s: float = 2.0, rounds: int = 9
) -> dict[str, list[float]]:
    """Per-call seconds of each candidate in each of ``rounds`` interleaved rounds; every
    candidate makes the same number of calls per round, sized so all rounds take ``budget_s``."""
    for fn in candidates.values():  # warm-up
        for _ in range(5):
            fn()
    one = max(per_call_seconds(fn, 20) for fn in candidates.values())
    calls = max(10, int(budget_s / rounds / len(candidates) / max(one, 1e-7)))
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    order = list(candidates)
    for index in range(rounds):
        # Rotate who goes first, so no candidate always runs right after the same one.
        shift = index % len(order)
        for name in order[shift:] + order[:shift]:
            samples[name].append(per_call_seconds(candidates[name], calls))
    return samples


def compare(
    candidates: dict[str, Callable[[], object]], budget_s: float = 2.0, rounds: int = 9
) -> dict[str, float]:
    """Median per-call seconds of each candidate over ``rounds`` interleaved rounds."""
    samples = compare_samples(candidates, budget_s, rounds)
    return {name: statistics.median(values) for name, values in samples.items()}


def interleave(candidates: Mapping[str, Callable[[], T]], rounds: int) -> dict[str, list[T]]:
    """For one-shot measurements (each call returns what it measured, e.g. in a fresh
    process): ``rounds`` samples per candidate, candidates alternating, order rotating."""
    samples: dict[str, list[T]] = {name: [] for name in candidates}
    order = list(candidates)
    for index in range(rounds):
        shift = index % len(order)
        for name in order[shift:] + order[:shift]:
            samples[name].append(candidates[name]())
    return samples


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a measured child process: this one, with the repository importable
    (so ``bench`` is found) and without anything that would slow or colour its output."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "100"}
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    env.update(extra)
    return env


def run_json(code: str, env: Mapping[str, str] | None = None, timeout: float = 600) -> Any:
    """Run ``code`` in a fresh interpreter; its last stdout line is JSON, returned parsed."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=dict(env) if env is not None else child_env(),
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _children_cpu() -> float:
    try:
        import resource
    except ImportError:  # Windows
        return math.nan
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_seconds(
    argv: Sequence[str], env: Mapping[str, str] | None = None
) -> tuple[float, float]:
    """Wall time and CPU time (user + system; NaN where unknown) of a whole command,
    interpreter start included. The command must succeed. On a loaded machine the CPU time
    varies far less than the wall time, as waiting for a core is not counted."""
    cpu = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(
        list(argv), capture_output=True, env=dict(env) if env is not None else child_env()
    )
    elapsed = time.perf_counter() - start
    cpu = _children_cpu() - cpu
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr.decode()[-3000:]}"
        )
    return elapsed, cpu
