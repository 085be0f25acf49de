"""numpy kernels for the constexpr ops that hold compressed weights, from their documentation
(coremltools' own ``decompress`` is not used, so a misread parameter shows in the results)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._kernels import kernel


@kernel("constexpr_affine_dequantize")
def affine_dequantize(op: Any) -> np.ndarray:
    # scale * (quantized_data - zero_point); a vector scale/zero point runs along ``axis``.
    data = np.asarray(op.quantized_data.val, np.float64)
    axis = int(op.axis.val) % data.ndim
    shape = [1] * data.ndim
    shape[axis] = -1

    def along(var: Any) -> np.ndarray:
        value = np.asarray(var.val, np.float64)
        return value if value.ndim == 0 else value.reshape(shape)

    return np.asarray((data - along(op.zero_point)) * along(op.scale))


@kernel("constexpr_blockwise_shift_scale")
def blockwise_shift_scale(op: Any) -> np.ndarray:
    # scale[i // block] * (data[i] - offset[i // block]), block = data.shape / scale.shape.
    data = np.asarray(op.data.val, np.float64)
    scale = np.asarray(op.scale.val, np.float64)
    offset = None if op.offset is None else np.asarray(op.offset.val, np.float64)
    for axis, (size, blocks) in enumerate(zip(data.shape, scale.shape, strict=True)):
        if size != blocks:
            scale = np.repeat(scale, size // blocks, axis)
            offset = None if offset is None else np.repeat(offset, size // blocks, axis)
    return np.asarray((data - (0.0 if offset is None else offset)) * scale)
