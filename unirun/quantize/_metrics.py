"""How close a reduced-precision model's outputs are to the fp32 model's."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["BOUND_COSINE", "BOUND_RELATIVE", "Agreement", "compare_outputs", "within_bound"]

Array = np.ndarray[Any, Any]

#: The documented bound a quantized model must meet on held-back data, for every float output:
#: mean cosine similarity per sample at least this ...
BOUND_COSINE = 0.999
#: ... and the largest absolute difference at most this fraction of the largest reference value.
BOUND_RELATIVE = 0.05


class Agreement:
    """Accumulates one output's (got, want) pairs over samples.

    ``summary()`` gives: ``cosine`` (mean over samples of the cosine similarity of the
    flattened outputs), ``relative`` (max |got − want| over all samples ÷ max |want|),
    ``max_abs``, ``top1`` (the fraction of rows whose argmax agrees, for classifier-shaped
    outputs: rank 2, at least 2 columns) and, for integer or bool outputs, ``match`` (the fraction
    of equal elements). Non-finite results are None.
    """

    def __init__(self) -> None:
        self.samples = 0
        self._cosines: list[float] = []
        self._max_abs = 0.0
        self._max_ref = 0.0
        self._top1 = [0, 0]
        self._match = [0, 0]
        self._float = True

    def add(self, got: Array, want: Array) -> None:
        if got.shape != want.shape:
            raise ValueError(f"shape {got.shape} differs from the reference's {want.shape}")
        self.samples += 1
        if want.dtype.kind not in "fc":
            self._float = False
            self._match[0] += int(np.count_nonzero(got == want))
            self._match[1] += int(want.size)
            return
        a = got.astype(np.float64).ravel()
        b = want.astype(np.float64).ravel()
        na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
        if not (math.isfinite(na) and math.isfinite(nb)):
            self._cosines.append(math.nan)
        elif na > 0 and nb > 0:
            self._cosines.append(float(np.dot(a, b)) / (na * nb))
        else:
            self._cosines.append(1.0 if na == nb == 0 else 0.0)
        if a.size:
            diff = float(np.max(np.abs(a - b)))
            self._max_abs = diff if math.isnan(diff) else max(self._max_abs, diff)
            self._max_ref = max(self._max_ref, float(np.max(np.abs(b))))
        if want.ndim == 2 and want.shape[1] >= 2:
            self._top1[0] += int(np.count_nonzero(got.argmax(1) == want.argmax(1)))
            self._top1[1] += want.shape[0]

    def summary(self) -> dict[str, float | None]:
        if not self._float:
            return {"match": self._match[0] / self._match[1] if self._match[1] else 1.0}
        cosine = float(np.mean(self._cosines)) if self._cosines else 1.0
        relative = self._max_abs / self._max_ref if self._max_ref > 0 else self._max_abs
        result: dict[str, float | None] = {
            "cosine": _finite(cosine),
            "relative": _finite(relative),
            "max_abs": _finite(self._max_abs),
        }
        if self._top1[1]:
            result["top1"] = self._top1[0] / self._top1[1]
        return result


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def compare_outputs(
    got: Sequence[Mapping[str, Array]], want: Sequence[Mapping[str, Array]]
) -> dict[str, dict[str, float | None]]:
    """Per output name, the :class:`Agreement` summary over paired samples."""
    meters: dict[str, Agreement] = {}
    for g, w in zip(got, want, strict=True):
        for name, expected in w.items():
            meters.setdefault(name, Agreement()).add(np.asarray(g[name]), np.asarray(expected))
    return {name: meter.summary() for name, meter in meters.items()}


def within_bound(summary: Mapping[str, float | None]) -> bool:
    """True if one output's summary meets the bound. Integer and bool outputs (labels, masks)
    are reported, not bounded: a handful of held-back samples cannot tell a rate."""
    if "match" in summary:
        return True
    cosine, relative = summary.get("cosine"), summary.get("relative")
    return (
        cosine is not None
        and relative is not None
        and cosine >= BOUND_COSINE
        and relative <= BOUND_RELATIVE
    )


class Meters:
    """:class:`Agreement` per (backend, output), for ``unirun compare``: it adds cosine
    similarity, max|Δ|/max|ref| and top-1 agreement to each report, and for ``int8`` decides
    pass/fail by the bound instead of element-wise tolerances."""

    def __init__(self) -> None:
        self._meters: dict[tuple[str, str], Agreement] = {}

    def add(self, backend: str, output: str, got: Array, want: Array) -> None:
        meter = self._meters.setdefault((backend, output), Agreement())
        # A shape mismatch is left out: the element-wise report already names it.
        with contextlib.suppress(ValueError):
            meter.add(np.asarray(got), np.asarray(want))

    def annotate(self, report: dict[str, Any], precision: str) -> dict[str, Any]:
        meter = self._meters.get((report["backend"], report["output"]))
        summary = meter.summary() if meter is not None and meter.samples else {}
        report["cosine"] = summary.get("cosine")
        report["max_abs_over_max_ref"] = summary.get("relative")
        report["top1"] = summary.get("top1")
        if precision == "int8" and "problem" not in report:
            report["ok"] = bool(summary) and within_bound(summary)
        return report

    @staticmethod
    def cells(report: Mapping[str, Any]) -> tuple[str, str]:
        """(cosine, top-1) as table cells; "-" where not applicable."""
        cosine, top1 = report.get("cosine"), report.get("top1")
        return (
            "-" if cosine is None else f"{cosine:.5f}",
            "-" if top1 is None else f"{top1:.1%}",
        )


#: How ``unirun compare`` states the int8 bound.
BOUND_TEXT = (
    f"int8 bound: mean cosine ≥ {BOUND_COSINE}, max|Δ|/max|ref| ≤ {BOUND_RELATIVE} per output"
)
