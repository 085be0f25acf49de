"""Resize (opset 10–19) and Upsample on the last two axes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from coremltools.converters.mil.mil import Builder as mb

from .._context import Context
from .._mil import Value, dim, rank
from .._node import Node
from .._registry import lowering

_SAMPLING = {
    "half_pixel": "UNALIGN_CORNERS",
    "pytorch_half_pixel": "UNALIGN_CORNERS",
    "align_corners": "STRICT_ALIGN_CORNERS",
    "asymmetric": "DEFAULT",
}


def _settings(node: Node) -> tuple[str, str, str]:
    """(mode, coordinate_transformation_mode, nearest_mode) with each opset's defaults."""
    mode = str(node.attr("mode", "nearest")).lower()
    mode = "linear" if mode == "bilinear" else mode
    if node.op_type == "Upsample" or node.opset < 11:
        return mode, "asymmetric", "floor"  # ONNX Runtime's "simple" rounding for upsampling
    return (
        mode,
        node.attr("coordinate_transformation_mode", "half_pixel"),
        node.attr("nearest_mode", "round_prefer_floor"),
    )


def _resize_check(node: Node) -> str | None:
    mode, coordinates, _ = _settings(node)
    if mode not in ("nearest", "linear"):
        return f"Resize mode {mode!r} has no Core ML equivalent"
    if coordinates not in _SAMPLING:
        return f"coordinate_transformation_mode {coordinates!r} is not supported"
    if node.attr("keep_aspect_ratio_policy", "stretch") != "stretch":
        return "keep_aspect_ratio_policy other than 'stretch' is not supported"
    return None


def _onnx_source_index(
    x: np.ndarray, scale: float, size_in: int, size_out: int, coordinates: str, nearest: str
) -> np.ndarray:
    if coordinates == "align_corners":
        source = x * (size_in - 1) / max(size_out - 1, 1)
    elif coordinates == "asymmetric":
        source = x / scale
    elif coordinates == "pytorch_half_pixel" and size_out == 1:
        source = np.zeros_like(x)
    else:
        source = (x + 0.5) / scale - 0.5
    rounded = {
        "round_prefer_floor": np.ceil(source - 0.5),
        "round_prefer_ceil": np.floor(source + 0.5),
        "floor": np.floor(source),
        "ceil": np.ceil(source),
    }
    return np.clip(rounded[nearest], 0, size_in - 1)


def _nearest_is_repeat(scale: float, size_in: int | None, coordinates: str, nearest: str) -> bool:
    """Whether ONNX's nearest sampling at this integer scale is plain pixel repetition."""
    if scale < 1 or scale != int(scale):
        return False
    for n in [size_in] if size_in is not None else [1, 2, 3, 5, 8]:
        out = np.arange(n * int(scale), dtype=np.float64)
        source = _onnx_source_index(out, scale, n, len(out), coordinates, nearest)
        if not np.array_equal(source, np.floor(out / scale)):
            return False
    return True


def _target(ctx: Context, node: Node, x: Value) -> tuple[list[float], list[int | None], bool]:
    """(scales, output sizes) of the last two axes, and whether scales (not sizes) were given."""
    r = rank(x)
    scales_in: np.ndarray | None
    sizes_in: np.ndarray | None
    if node.op_type == "Upsample":
        given = node.attr("scales") if node.opset < 9 else ctx.const(node, 1, "scales")
        scales_in, sizes_in = np.asarray(given, np.float64), None
    elif node.opset < 11:
        scales_in, sizes_in = ctx.const(node, 1, "scales"), None
    else:
        scales_in, sizes_in = ctx.const(node, 2, "scales"), ctx.const(node, 3, "sizes")
        if scales_in is not None and scales_in.size == 0:
            scales_in = None
    axes = node.ints("axes") or list(range(r))
    axes = [a + r if a < 0 else a for a in axes]
    scales: list[float] = [1.0] * r
    sizes: list[int | None] = [dim(x, a) for a in range(r)]
    if sizes_in is not None and sizes_in.size:
        for a, s in zip(axes, sizes_in.reshape(-1).tolist(), strict=True):
            size_in = dim(x, a)
            sizes[a] = int(s)
            scales[a] = float(s) / size_in if size_in else float("nan")
    elif scales_in is not None:
        for a, s in zip(axes, scales_in.reshape(-1).tolist(), strict=True):
            size_in = dim(x, a)
            scales[a] = float(s)
            sizes[a] = math.floor(size_in * s) if size_in is not None else None
    else:
        raise node.error("needs scales or sizes")
    for a in range(r - 2):
        if sizes[a] != dim(x, a) or (scales[a] != 1.0 and not math.isnan(scales[a])):
            raise node.error("Core ML resizes only the last two axes; other scales must be 1")
    return scales[-2:], sizes[-2:], sizes_in is None or not sizes_in.size


@lowering("Resize", "Upsample", check=_resize_check)
def _resize(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    if rank(x) < 3:
        raise node.error("Core ML resizes inputs of rank >= 3")
    mode, coordinates, nearest = _settings(node)
    scales, sizes, from_scales = _target(ctx, node, x)
    if node.attr("antialias", 0) and any(s < 1 for s in scales):
        raise node.error("antialiased down-sampling is not supported")
    ins = [dim(x, rank(x) - 2), dim(x, rank(x) - 1)]
    if mode == "nearest":
        if not all(
            _nearest_is_repeat(s, n, coordinates, nearest) for s, n in zip(scales, ins, strict=True)
        ):
            raise node.error(
                f"nearest resize by scales {scales} with {coordinates}/{nearest} is not plain "
                "pixel repetition, the only nearest resize Core ML offers"
            )
        return mb.upsample_nearest_neighbor(
            x=x, scale_factor_height=np.int32(scales[0]), scale_factor_width=np.int32(scales[1])
        )
    if from_scales:
        for s, n, out in zip(scales, ins, sizes, strict=True):
            if n is not None and out is not None and n * s != out:
                raise node.error(
                    f"scale {s} does not map {n} pixels to a whole {out}; Core ML samples at "
                    "the in/out ratio, ONNX at the given scale"
                )
    if coordinates == "pytorch_half_pixel" and 1 in sizes and 1 not in ins:
        raise node.error("pytorch_half_pixel to an output size of 1 is not supported")
    height, width = sizes
    if height is not None and width is not None:
        return mb.resize_bilinear(
            x=x,
            target_size_height=np.int32(height),
            target_size_width=np.int32(width),
            sampling_mode=_SAMPLING[coordinates],
        )
    kwargs: dict[str, Any] = {
        "align_corners": coordinates == "align_corners",
        "half_pixel_centers": coordinates in ("half_pixel", "pytorch_half_pixel"),
    }
    return mb.upsample_bilinear(
        x=x,
        scale_factor_height=np.float32(scales[0]),
        scale_factor_width=np.float32(scales[1]),
        **kwargs,
    )
