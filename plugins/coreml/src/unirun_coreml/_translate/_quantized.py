"""Int8 weights: a DequantizeLinear of a constant stays int8 in the ML Program.

Such a node is folded like any constant node (its float value serves every lowering that reads
constants), and what it dequantizes is remembered by the ONNX value name. The lowerings that
take weights (Conv, ConvTranspose, Gemm, MatMul) ask :func:`weight` for it and get a MIL
``constexpr`` op over the int8 data instead of a float constant: ``constexpr_affine_dequantize``
(iOS16/17: per-tensor or one axis) or ``constexpr_blockwise_shift_scale`` (iOS18+, where the
other one is deprecated). Core ML keeps the int8 data in the package and dequantizes at load or
run time; the values are exactly ONNX's ``(q - zero_point) * scale``. Before iOS16 there is no
such op and the weights stay float.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from coremltools.converters.mil.mil import Builder as mb

from .._coremltools import coremltools
from ._context import Context
from ._mil import Value, np_dtype
from ._node import Node

_DATA = (np.dtype(np.int8), np.dtype(np.uint8))


@dataclass(frozen=True)
class Quantized:
    """``(data - zero_point) * scale``, per tensor (``axis`` None) or along ``axis``."""

    data: np.ndarray[Any, Any]  # int8 or uint8
    scale: np.ndarray[Any, Any]  # float64, scalar or one value per index of ``axis``
    zero_point: np.ndarray[Any, Any]  # the data's dtype, shaped like ``scale``
    axis: int | None

    def transposed(self, perm: Sequence[int]) -> Quantized:
        axis = None if self.axis is None else list(perm).index(self.axis)
        return replace(self, data=np.ascontiguousarray(self.data.transpose(perm)), axis=axis)

    def times(self, factor: float) -> Quantized:
        return self if factor == 1.0 else replace(self, scale=self.scale * factor)

    def var(self, target: Any, dtype: np.dtype[Any]) -> Any:
        """The constexpr op whose output is the float weight (``dtype``: fp32 or fp16)."""
        scale = self.scale.astype(dtype)
        zero = self.zero_point
        if target.value >= coremltools().target.iOS18.value:
            shape = [1] * self.data.ndim
            if self.axis is not None:
                shape[self.axis] = -1
            offset = {"offset": zero.reshape(shape)} if zero.any() else {}
            return mb.constexpr_blockwise_shift_scale(
                data=self.data, scale=scale.reshape(shape), **offset
            )
        return mb.constexpr_affine_dequantize(
            quantized_data=self.data,
            zero_point=zero,
            scale=scale,
            axis=np.int32(0 if self.axis is None else self.axis),
        )


def remember(ctx: Context, node: Node, inputs: list[Value | None]) -> None:
    """Called for every folded node: note an int8 DequantizeLinear of constants, and follow
    it through a Transpose or Identity (weight layout changes a tool may write)."""
    if not node.outputs or not node.outputs[0] or node.domain:
        return
    if node.op_type == "DequantizeLinear":
        found = _dequantized(ctx, node, inputs)
    elif node.op_type in ("Transpose", "Identity") and node.inputs[0] in ctx.quantized:
        found = ctx.quantized[node.inputs[0]]
        if node.op_type == "Transpose":
            found = found.transposed(node.ints("perm") or range(found.data.ndim)[::-1])
    else:
        return
    if found is not None:
        ctx.quantized[node.outputs[0]] = found


def _dequantized(ctx: Context, node: Node, inputs: list[Value | None]) -> Quantized | None:
    ct = coremltools()
    if ctx.target.value < ct.target.iOS16.value or node.attr("block_size", 0):
        return None  # no constexpr op before iOS16; blocked scales (opset 21) stay float
    data, scale = inputs[0], inputs[1]
    zero = inputs[2] if len(inputs) > 2 else None
    if not isinstance(data, np.ndarray) or data.dtype not in _DATA or data.ndim == 0:
        return None
    scale = np.asarray(scale)
    if scale.dtype.kind != "f" or scale.ndim > 1 or not np.all(np.isfinite(scale)):
        return None
    zero = np.zeros(scale.shape, data.dtype) if zero is None else np.asarray(zero)
    if zero.dtype != data.dtype or zero.shape != scale.shape:
        return None
    axis = None
    if scale.ndim == 1:
        axis = int(node.attr("axis", 1))
        axis = axis + data.ndim if axis < 0 else axis
        if not 0 <= axis < data.ndim or data.shape[axis] != scale.size:
            return None
    return Quantized(data, scale.astype(np.float64), zero, axis)


def weight(
    ctx: Context,
    node: Node,
    index: int,
    like: Value,
    perm: Sequence[int] | None = None,
    times: float = 1.0,
) -> Any:
    """Input ``index`` of ``node`` as a constexpr op over its int8 data (transposed by
    ``perm``, scaled by ``times``, in ``like``'s float type), or None when it is not an int8
    weight. One op per distinct form, so a weight used twice is stored once."""
    names = node.inputs
    name = names[index] if index < len(names) else ""
    found = ctx.quantized.get(name) if name else None
    if found is None:
        return None
    dtype = np_dtype(like)
    if dtype.kind != "f":
        return None
    key = (name, tuple(perm) if perm is not None else None, times, dtype.str)
    if key not in ctx.weights:
        form = found.transposed(perm) if perm is not None else found
        ctx.weights[key] = form.times(times).var(ctx.target, dtype)
    return ctx.weights[key]
