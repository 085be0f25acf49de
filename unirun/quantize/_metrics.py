"""How close a reduced-precision model's outputs are to the fp32 model's."""

from __future__ import annotations

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
        self.samples += 1
        if got.shape != want.shape:
            raise ValueError(f"shape {got.shape} differs from the reference's {want.shape}")
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
