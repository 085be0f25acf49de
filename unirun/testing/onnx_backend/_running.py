"""Running node tests on a backend and comparing the outputs with the expected ones."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from unirun.dtypes import DType

from ._corpus import NodeCase

__all__ = ["Outcome", "compare", "run_case", "run_suite", "summarize"]


@dataclass(frozen=True)
class Outcome:
    """``status`` is ``pass``, ``fail`` (ran, wrong result) or ``error`` (raised); ``stage`` says
    where: ``prepare`` (compile and load), ``run`` or ``compare``."""

    status: str
    stage: str = ""
    message: str = ""

    def to_json(self) -> dict[str, str]:
        data = {"status": self.status}
        if self.stage:
            data["stage"] = self.stage
        if self.message:
            data["message"] = self.message
        return data


def run_case(backend: Any, case: NodeCase, device: str = "CPU") -> Outcome:
    """Prepare ``case.model`` on ``backend`` (anything with ``prepare(model, device)``), run it
    and compare with the expected outputs."""
    with warnings.catch_warnings():
        # The corpus feeds NaN, infinities and overflowing casts on purpose; numpy-based
        # engines warn about them, which is not a failure.
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            rep = backend.prepare(case.model, device)
        except Exception as exc:
            return Outcome("error", "prepare", _describe(exc))
        try:
            got = list(rep.run(list(case.inputs)))
        except Exception as exc:
            return Outcome("error", "run", _describe(exc))
        finally:
            close = getattr(rep, "close", None)
            if callable(close):
                close()
    try:
        problem = compare(case.outputs, got, case.rtol, case.atol)
    except Exception as exc:
        problem = f"cannot compare: {_describe(exc)}"
    return Outcome("fail", "compare", problem) if problem else Outcome("pass")


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    text = text if len(text) <= 240 else text[:240] + " …"
    return f"{type(exc).__name__}: {text}"


def compare(expected: Sequence[Any], got: Sequence[Any], rtol: float, atol: float) -> str | None:
    """None if ``got`` matches ``expected``, else what differs. Shapes and dtypes must be equal;
    floats within ``rtol``/``atol`` (narrow floats compared in float32, bfloat16 to two units in
    the last place); everything else exactly."""
    if len(got) != len(expected):
        return f"expected {len(expected)} outputs, got {len(got)}"
    for index, (want, have) in enumerate(zip(expected, got, strict=True)):
        problem = _compare_one(want, have, rtol, atol)
        if problem:
            return f"output {index}: {problem}"
    return None


_NUMPY_FLOATS = (DType.FLOAT16, DType.FLOAT32, DType.FLOAT64)


def _compare_one(want: Any, have: Any, rtol: float, atol: float) -> str | None:
    if isinstance(want, (list, tuple)):
        if not isinstance(have, (list, tuple)) or len(have) != len(want):
            return f"expected a sequence of {len(want)}, got {type(have).__name__}"
        for i, (w, h) in enumerate(zip(want, have, strict=True)):
            problem = _compare_one(w, h, rtol, atol)
            if problem:
                return f"item {i}: {problem}"
        return None
    if want is None or have is None:
        return None if want is None and have is None else "expected and got differ in presence"
    if isinstance(want, dict):
        if not isinstance(have, dict) or set(have) != set(want):
            return f"expected a map with keys {sorted(want)!r:.80}, got {type(have).__name__}"
        for key in want:
            problem = _compare_one(want[key], have[key], rtol, atol)
            if problem:
                return f"key {key!r}: {problem}"
        return None
    want, have = np.asarray(want), np.asarray(have)
    if want.shape != have.shape:
        return f"shape {have.shape}, expected {want.shape}"
    if want.dtype == object:
        return None if np.array_equal(want, have) else "strings differ"
    if want.dtype != have.dtype:
        return f"dtype {have.dtype}, expected {want.dtype}"
    kind = DType.from_numpy(want.dtype)
    if kind.is_float or want.dtype.kind == "c":
        if kind.is_float and kind not in _NUMPY_FLOATS:  # ml_dtypes types: compare in float32
            if kind is DType.BFLOAT16:
                rtol = max(rtol, 2.0**-6)
            want, have = want.astype(np.float32), have.astype(np.float32)
        if np.allclose(have, want, rtol=rtol, atol=atol, equal_nan=True):
            return None
        with np.errstate(invalid="ignore"):
            worst = float(np.nanmax(np.abs(have.astype(complex) - want.astype(complex))))
        return f"values differ (max abs difference {worst:.3g})"
    if kind.bits < 8:
        want, have = want.astype(np.int8), have.astype(np.int8)
    if np.array_equal(want, have):
        return None
    return f"values differ at {int(np.count_nonzero(want != have))} of {want.size} elements"


def run_suite(
    backend: Any,
    cases: Iterable[NodeCase],
    device: str = "CPU",
    progress: Callable[[str, Outcome], None] | None = None,
) -> dict[str, Outcome]:
    """Run every case; returns test name → outcome (a test with several data sets passes only
    if all do)."""
    results: dict[str, Outcome] = {}
    for case in cases:
        outcome = run_case(backend, case, device)
        if results.get(case.name, Outcome("pass")).status == "pass":
            results[case.name] = outcome
        if progress is not None:
            progress(case.name, outcome)
    return results


def summarize(results: Mapping[str, Outcome]) -> dict[str, int]:
    counts = {"tests": len(results), "pass": 0, "fail": 0, "error": 0}
    for outcome in results.values():
        counts[outcome.status] += 1
    return counts
