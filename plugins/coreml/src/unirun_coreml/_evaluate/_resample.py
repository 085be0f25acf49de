"""numpy kernels for MIL's resampling ops, following the grids in their documentation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._kernels import kernel


def _bilinear(x: np.ndarray, grid_h: np.ndarray, grid_w: np.ndarray) -> np.ndarray:
    def axis_weights(grid: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        grid = np.clip(grid, 0, size - 1)
        lo = np.floor(grid).astype(np.int64)
        hi = np.minimum(lo + 1, size - 1)
        return lo, hi, grid - lo

    h_lo, h_hi, h_frac = axis_weights(grid_h, x.shape[-2])
    w_lo, w_hi, w_frac = axis_weights(grid_w, x.shape[-1])
    rows = x[..., h_lo, :] * (1 - h_frac)[:, None] + x[..., h_hi, :] * h_frac[:, None]
    return np.asarray(rows[..., w_lo] * (1 - w_frac) + rows[..., w_hi] * w_frac)


def _sampling_grid(mode: str, size_in: int, size_out: int) -> np.ndarray:
    i = np.arange(size_out, dtype=np.float64)
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        if size_out == 1:
            return np.array([(size_in - 1) / 2.0 if mode == "ALIGN_CORNERS" else 0.0])
        return i * (size_in - 1) / (size_out - 1)
    if mode == "DEFAULT":
        if size_out == 1:
            return np.zeros(1)
        return i * (size_in - size_in / size_out) / (size_out - 1)
    if mode == "OFFSET_CORNERS":
        delta = size_in / size_out
        return 0.5 * delta + i * delta
    if mode == "UNALIGN_CORNERS":
        spacing = size_in / size_out
        return i * spacing + 0.5 * spacing - 0.5
    raise NotImplementedError(f"sampling_mode {mode}")


@kernel("resize_bilinear")
def resize_bilinear(op: Any) -> np.ndarray:
    x = np.asarray(op.x.val, np.float64)
    out_h, out_w = int(op.target_size_height.val), int(op.target_size_width.val)
    mode = str(op.sampling_mode.val) if op.sampling_mode is not None else "DEFAULT"
    return _bilinear(
        x, _sampling_grid(mode, x.shape[-2], out_h), _sampling_grid(mode, x.shape[-1], out_w)
    )


@kernel("upsample_bilinear")
def upsample_bilinear(op: Any) -> np.ndarray:
    x = np.asarray(op.x.val, np.float64)
    scales = [float(op.scale_factor_height.val), float(op.scale_factor_width.val)]
    align = bool(op.align_corners.val) if op.align_corners is not None else True
    half = getattr(op, "half_pixel_centers", None)
    half_pixel = (not align) if half is None else bool(half.val)
    grids = []
    for size, scale in zip(x.shape[-2:], scales, strict=True):
        out = math.floor(size * scale)
        if align:
            grids.append(_sampling_grid("STRICT_ALIGN_CORNERS", size, out))
        elif half_pixel:
            grids.append(_sampling_grid("UNALIGN_CORNERS", size, out))
        else:
            grids.append(np.arange(out, dtype=np.float64) * size / out)
    return _bilinear(x, grids[0], grids[1])


@kernel("upsample_nearest_neighbor")
def upsample_nearest_neighbor(op: Any) -> np.ndarray:
    x = np.asarray(op.x.val)
    scales = [float(op.scale_factor_height.val), float(op.scale_factor_width.val)]
    for axis, scale in zip((-2, -1), scales, strict=True):
        size = x.shape[axis]
        index = np.floor(np.arange(math.floor(size * scale)) / scale).astype(np.int64)
        x = np.take(x, np.minimum(index, size - 1), axis=axis)
    return x
