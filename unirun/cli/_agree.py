"""Whether two outputs agree: the arithmetic and the tolerance rule behind ``unirun compare``
(documented in docs/cli.md)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dtypes import DType
from ..errors import UnirunError

__all__ = [
    "TOLERANCES",
    "Array",
    "compare_arrays",
    "merge",
    "numeric_float",
    "output_scale",
    "tolerance_for",
]

Array = np.ndarray[Any, Any]

#: (rtol, atol as a fraction of the output's scale) per compute precision. fp32 engines differ
#: by summation order and fused kernels, an error that grows with the magnitude of what is
#: summed, hence the scale; fp16 keeps ~3 decimal digits and bf16 ~2, and the error grows
#: through the layers.
TOLERANCES: dict[str, tuple[float, float]] = {
    "fp32": (1e-4, 1e-4),
    "fp16": (1e-2, 1e-2),
    "bf16": (5e-2, 5e-2),
    "int8": (5e-2, 5e-2),  # shown only: int8 passes or fails by the bound (unirun.quantize)
}
_LOSS = ("fp32", "fp16", "bf16", "int8")  # least to most lossy


def numeric_float(dtype: np.dtype[Any]) -> bool:
    """Floats and complex numbers, the narrow ``ml_dtypes`` floats (kind ``V``) included."""
    if dtype.kind in "fc":
        return True
    try:
        return DType.from_numpy(dtype).is_float
    except (UnirunError, ValueError, TypeError):
        return False


def compare_arrays(got: Array, want: Array, rtol: float, atol: float) -> dict[str, Any]:
    """How far ``got`` is from ``want``: pass if every element has ``|got - want| <= atol +
    rtol * |want|`` (NaN matches NaN, equal infinities match); non-float outputs must be equal.
    ``max_rel`` is taken over the elements whose baseline magnitude is at least ``atol``."""
    result: dict[str, Any] = {"total": int(want.size), "max_abs": 0.0, "max_rel": 0.0}
    result.update(rtol=rtol, atol=atol)
    if got.shape != want.shape:
        return {
            **result,
            "ok": False,
            "mismatched": int(want.size),
            "fraction": 1.0,
            "problem": f"shape {list(got.shape)}, baseline {list(want.shape)}",
        }
    if want.size == 0:
        return {**result, "ok": got.dtype == want.dtype, "mismatched": 0, "fraction": 0.0}
    if numeric_float(want.dtype) or numeric_float(got.dtype):
        a, b = got.astype(np.complex128), want.astype(np.complex128)
        nan_a, nan_b = np.isnan(a), np.isnan(b)
        same = (nan_a & nan_b) | (np.isinf(a) & (a == b))
        with np.errstate(invalid="ignore"):  # inf - inf: handled by ``same``
            diff = np.where(same, 0.0, np.where(nan_a | nan_b, np.inf, np.abs(a - b)))
        scale = np.abs(b)
        bad = ~(diff <= atol + rtol * np.where(same, 0.0, scale))
        big = (scale >= atol) & ~same
        max_rel = float((diff[big] / scale[big]).max()) if big.any() else 0.0
    else:
        equal = got == want
        bad = ~np.asarray(equal, dtype=bool)
        diff = (
            np.abs(got.astype(np.float64) - want.astype(np.float64))
            if want.dtype.kind in "iub"
            else bad.astype(np.float64)
        )
        max_rel = 0.0 if not bad.any() else float("nan")
    result.update(
        ok=not bad.any() and got.dtype == want.dtype,
        mismatched=int(bad.sum()),
        fraction=float(bad.mean()),
        max_abs=float(diff.max()),
        max_rel=max_rel,
    )
    if got.dtype != want.dtype:
        result["problem"] = f"dtype {got.dtype}, baseline {want.dtype}"
    if bad.any():
        result["worst_index"] = [int(i) for i in np.unravel_index(int(np.argmax(diff)), diff.shape)]
    return result


def output_scale(want: Array) -> float:
    """The magnitude default absolute tolerances are relative to: the largest finite
    ``|value|`` of the baseline's output (1 when it has none, e.g. all zeros)."""
    if want.size == 0 or not numeric_float(want.dtype):
        return 1.0
    values = np.abs(
        want.astype(np.complex128) if want.dtype.kind == "c" else want.astype(np.float64)
    )
    finite = values[np.isfinite(values)]
    top = float(finite.max()) if finite.size else 0.0
    return top if top > 0 else 1.0


def tolerance_for(precision: str, baseline_precision: str) -> tuple[str, float, float]:
    """The precision whose tolerances apply (the lossier of the two) and its (rtol, atol
    factor)."""
    worst = max(precision, baseline_precision, key=lambda p: _LOSS.index(p) if p in _LOSS else 0)
    rtol, atol = TOLERANCES.get(worst, TOLERANCES["fp32"])
    return worst, rtol, atol


def merge(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    if old is None:
        return new
    merged = dict(old)
    merged["ok"] = old["ok"] and new["ok"]
    merged["total"] = old["total"] + new["total"]
    merged["mismatched"] = old["mismatched"] + new["mismatched"]
    merged["fraction"] = merged["mismatched"] / merged["total"] if merged["total"] else 0.0
    for key in ("max_abs", "max_rel", "atol", "scale"):
        merged[key] = max(old[key], new[key])
    for key in ("problem", "inputs"):
        if key in new:
            merged[key] = new[key]
    return merged
