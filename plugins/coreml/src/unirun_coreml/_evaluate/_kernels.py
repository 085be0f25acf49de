"""numpy kernels for the MIL ops whose coremltools classes have no ``value_inference``
(conv, pools, norms, resampling …) or whose ``value_inference`` is unusable here.

Each kernel takes the MIL operation (inputs already hold values) and returns its output(s).
They follow the MIL op documentation; where that documentation is the only source, the
kernel is our reading of it, not Apple's implementation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

Kernel = Callable[[Any], Any]
KERNELS: dict[str, Kernel] = {}


def kernel(*names: str) -> Callable[[Kernel], Kernel]:
    def register(fn: Kernel) -> Kernel:
        for name in names:
            KERNELS[name] = fn
        return fn

    return register


def _val(var: Any, default: Any = None) -> Any:
    return default if var is None else var.val


def _f64(var: Any) -> np.ndarray:
    return np.asarray(var.val, dtype=np.float64)


def _spatial_pads(
    op: Any, sizes: list[int], kernel_eff: list[int], strides: list[int]
) -> list[tuple[int, int]]:
    pad_type = str(_val(op.pad_type, "valid")).lower()
    n = len(sizes)
    if pad_type == "valid":
        return [(0, 0)] * n
    if pad_type == "custom":
        pad = [int(p) for p in _val(op.pad, [0] * 2 * n)]
        return [(pad[2 * i], pad[2 * i + 1]) for i in range(n)]
    pads = []
    for size, k, s in zip(sizes, kernel_eff, strides, strict=True):
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        small, large = total // 2, total - total // 2
        pads.append((small, large) if pad_type == "same" else (large, small))
    return pads


def _windows(
    x: np.ndarray, kernel_eff: list[int], strides: list[int], dilations: list[int]
) -> np.ndarray:
    """(N, C, *out, *kernel) view of every pooling/conv window."""
    spatial = len(kernel_eff)
    win = sliding_window_view(x, kernel_eff, axis=tuple(range(2, 2 + spatial)))
    index = (
        slice(None),
        slice(None),
        *(slice(None, None, s) for s in strides),
        *(slice(None, None, d) for d in dilations),
    )
    return win[index]


@kernel("conv")
def conv(op: Any) -> np.ndarray:
    x, w = _f64(op.x), _f64(op.weight)
    spatial = x.ndim - 2
    strides = [int(s) for s in _val(op.strides, [1] * spatial)]
    dilations = [int(d) for d in _val(op.dilations, [1] * spatial)]
    groups = int(_val(op.groups, 1))
    kernel_eff = [(k - 1) * d + 1 for k, d in zip(w.shape[2:], dilations, strict=True)]
    pads = _spatial_pads(op, list(x.shape[2:]), kernel_eff, strides)
    x = np.pad(x, [(0, 0), (0, 0), *pads])
    win = _windows(x, kernel_eff, strides, dilations)
    cin, cout = w.shape[1], w.shape[0] // groups
    k_axes = list(range(2 + spatial, 2 + 2 * spatial))
    parts = []
    for g in range(groups):
        xg = win[:, g * cin : (g + 1) * cin]
        wg = w[g * cout : (g + 1) * cout]
        out = np.tensordot(xg, wg, axes=([1, *k_axes], [1, *range(2, 2 + spatial)]))
        parts.append(np.moveaxis(out, -1, 1))
    y = np.concatenate(parts, axis=1)
    if op.bias is not None:
        y = y + _f64(op.bias).reshape((1, -1) + (1,) * spatial)
    return y


@kernel("conv_transpose")
def conv_transpose(op: Any) -> np.ndarray:
    x, w = _f64(op.x), _f64(op.weight)  # w: [C_in, C_out/groups, *K]
    spatial = x.ndim - 2
    strides = [int(s) for s in _val(op.strides, [1] * spatial)]
    dilations = [int(d) for d in _val(op.dilations, [1] * spatial)]
    groups = int(_val(op.groups, 1))
    if str(_val(op.pad_type, "valid")).lower() in ("same", "same_lower"):
        raise NotImplementedError("conv_transpose with same padding")
    kernel = w.shape[2:]
    full = [
        (n - 1) * s + (k - 1) * d + 1
        for n, s, k, d in zip(x.shape[2:], strides, kernel, dilations, strict=True)
    ]
    cin, cout = x.shape[1] // groups, w.shape[1]
    y = np.zeros((x.shape[0], cout * groups, *full))
    for position in np.ndindex(*kernel):
        index = tuple(
            slice(p * d, p * d + (n - 1) * s + 1, s)
            for p, d, n, s in zip(position, dilations, x.shape[2:], strides, strict=True)
        )
        for g in range(groups):
            w_index = (slice(g * cin, (g + 1) * cin), slice(None), *position)
            wg = w[w_index]  # [cin, cout]
            contrib = np.tensordot(x[:, g * cin : (g + 1) * cin], wg, axes=([1], [0]))
            target = (slice(None), slice(g * cout, (g + 1) * cout), *index)
            y[target] += np.moveaxis(contrib, -1, 1)
    pads = _spatial_pads(op, full, [1] * spatial, [1] * spatial)
    crop = tuple(slice(b, size - e) for (b, e), size in zip(pads, full, strict=True))
    keep = (slice(None), slice(None), *crop)
    y = y[keep]
    # coremltools adds output_shape to every conv_transpose; we only accept the one the pads give.
    if op.output_shape is not None and tuple(op.output_shape.val) != y.shape:
        raise NotImplementedError(f"conv_transpose output_shape {op.output_shape.val}")
    if op.bias is not None:
        y = y + _f64(op.bias).reshape((1, -1) + (1,) * spatial)
    return y


def _pool_setup(op: Any) -> tuple[np.ndarray, list[int], list[int], list[tuple[int, int]]]:
    x = _f64(op.x)
    spatial = x.ndim - 2
    kernel = [int(k) for k in op.kernel_sizes.val]
    strides = [int(s) for s in _val(op.strides, [1] * spatial)]
    pads = _spatial_pads(op, list(x.shape[2:]), kernel, strides)
    if bool(_val(op.ceil_mode, False)):
        grown = []
        for (b, e), size, k, s in zip(pads, x.shape[2:], kernel, strides, strict=True):
            out = (size + b + e - k + s - 1) // s + 1
            if (out - 1) * s >= size + b and (b or e):
                out -= 1
            grown.append((b, max(e, (out - 1) * s + k - size - b)))
        pads = grown
    return x, kernel, strides, pads


@kernel("max_pool")
def max_pool(op: Any) -> np.ndarray:
    x, kernel, strides, pads = _pool_setup(op)
    x = np.pad(x, [(0, 0), (0, 0), *pads], constant_values=-np.inf)
    win = _windows(x, kernel, strides, [1] * len(kernel))
    return np.asarray(win.max(axis=tuple(range(-len(kernel), 0))))


@kernel("avg_pool")
def avg_pool(op: Any) -> np.ndarray:
    x, kernel, strides, pads = _pool_setup(op)
    axes = tuple(range(-len(kernel), 0))
    total = _windows(np.pad(x, [(0, 0), (0, 0), *pads]), kernel, strides, [1] * len(kernel))
    sums = total.sum(axis=axes)
    if bool(_val(op.exclude_padding_from_average, False)):
        ones = np.pad(np.ones((1, 1, *x.shape[2:])), [(0, 0), (0, 0), *pads])
        counts = _windows(ones, kernel, strides, [1] * len(kernel)).sum(axis=axes)
        return np.asarray(sums / counts)
    return np.asarray(sums / float(np.prod(kernel)))


def _channel(var: Any, ndim: int) -> np.ndarray:
    return _f64(var).reshape((1, -1) + (1,) * (ndim - 2))


@kernel("batch_norm")
def batch_norm(op: Any) -> np.ndarray:
    x = _f64(op.x)
    eps = float(_val(op.epsilon, 1e-5))
    y = (x - _channel(op.mean, x.ndim)) / np.sqrt(_channel(op.variance, x.ndim) + eps)
    if op.gamma is not None:
        y = y * _channel(op.gamma, x.ndim)
    if op.beta is not None:
        y = y + _channel(op.beta, x.ndim)
    return np.asarray(y)


@kernel("instance_norm")
def instance_norm(op: Any) -> np.ndarray:
    x = _f64(op.x)
    axes = tuple(range(2, x.ndim))
    eps = float(_val(op.epsilon, 1e-5))
    y = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    if op.gamma is not None:
        y = y * _channel(op.gamma, x.ndim)
    if op.beta is not None:
        y = y + _channel(op.beta, x.ndim)
    return np.asarray(y)


@kernel("local_response_norm")
def local_response_norm(op: Any) -> np.ndarray:
    x = _f64(op.x)
    size = int(op.size.val)
    alpha, beta, k = (
        float(_val(v, d)) for v, d in ((op.alpha, 1e-4), (op.beta, 0.75), (op.k, 1.0))
    )
    squares = np.pad(x * x, [(0, 0), ((size - 1) // 2, size // 2)] + [(0, 0)] * (x.ndim - 2))
    window = sum(squares[:, i : i + x.shape[1]] for i in range(size))
    return np.asarray(x / (k + alpha / size * window) ** beta)


@kernel("layer_norm")
def layer_norm(op: Any) -> np.ndarray:
    x = _f64(op.x)
    axes = tuple(int(a) for a in (_val(op.axes) if op.axes is not None else range(x.ndim)))
    eps = float(_val(op.epsilon, 1e-5))
    y = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    shape = [x.shape[i] if i in [a % x.ndim for a in axes] else 1 for i in range(x.ndim)]
    if op.gamma is not None:
        y = y * _f64(op.gamma).reshape(shape)
    if op.beta is not None:
        y = y + _f64(op.beta).reshape(shape)
    return np.asarray(y)


@kernel("silu")
def silu(op: Any) -> np.ndarray:
    x = _f64(op.x)
    return np.asarray(x / (1.0 + np.exp(-x)))


@kernel("depth_to_space")
def depth_to_space(op: Any) -> np.ndarray:
    x, b = op.x.val, int(op.block_size.val)
    n, c, h, w = x.shape
    y = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    return np.asarray(y.reshape(n, c // (b * b), h * b, w * b))


@kernel("pixel_shuffle")
def pixel_shuffle(op: Any) -> np.ndarray:
    x, b = op.x.val, int(op.upscale_factor.val)
    n, c, h, w = x.shape
    y = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    return np.asarray(y.reshape(n, c // (b * b), h * b, w * b))


@kernel("space_to_depth")
def space_to_depth(op: Any) -> np.ndarray:
    x, b = op.x.val, int(op.block_size.val)
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // b, b, w // b, b).transpose(0, 3, 5, 1, 2, 4)
    return np.asarray(y.reshape(n, c * b * b, h // b, w // b))


@kernel("pixel_unshuffle")
def pixel_unshuffle(op: Any) -> np.ndarray:
    x, b = op.x.val, int(op.downscale_factor.val)
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // b, b, w // b, b).transpose(0, 1, 3, 5, 2, 4)
    return np.asarray(y.reshape(n, c * b * b, h // b, w // b))


@kernel("gather_nd")
def gather_nd(op: Any) -> np.ndarray:
    x, indices = op.x.val, np.asarray(op.indices.val).astype(np.int64)
    if int(_val(getattr(op, "batch_dims", None), 0)):
        raise NotImplementedError("gather_nd with batch_dims")
    depth = indices.shape[-1]
    sizes = np.array(x.shape[:depth])
    indices = np.where(indices < 0, indices + sizes, indices)
    return np.asarray(x[tuple(np.moveaxis(indices, -1, 0))])


@kernel("cumsum")
def cumsum(op: Any) -> np.ndarray:
    # coremltools' value_inference breaks on exclusive=True.
    x = np.asarray(op.x.val)
    axis = int(_val(op.axis, 0))
    reverse, exclusive = bool(_val(op.reverse, False)), bool(_val(op.exclusive, False))
    data = np.flip(x, axis) if reverse else x
    out = np.cumsum(data, axis=axis, dtype=np.float64 if x.dtype.kind == "f" else np.int64)
    if exclusive:
        out = np.concatenate(
            [
                np.zeros_like(np.take(out, [0], axis=axis)),
                np.take(out, range(out.shape[axis] - 1), axis=axis),
            ],
            axis=axis,
        )
    return np.flip(out, axis) if reverse else out


@kernel("topk")
def topk(op: Any) -> tuple[np.ndarray, np.ndarray]:
    # A stable sort, so ties come out lowest index first, as ONNX specifies.
    x = np.asarray(op.x.val)
    axis, k = int(_val(op.axis, -1)), int(_val(op.k, 1))
    ascending = bool(_val(op.ascending, False))
    order = np.argsort(x if ascending else -x, axis=axis, kind="stable")
    indices = np.take(order, range(k), axis=axis)
    return np.take_along_axis(x, indices, axis=axis), indices


_REDUCERS: dict[str, Callable[..., Any]] = {
    "reduce_sum": lambda x, a, k: np.sum(x, axis=a, keepdims=k),
    "reduce_mean": lambda x, a, k: np.mean(x, axis=a, keepdims=k),
    "reduce_max": lambda x, a, k: np.max(x, axis=a, keepdims=k),
    "reduce_min": lambda x, a, k: np.min(x, axis=a, keepdims=k),
    "reduce_prod": lambda x, a, k: np.prod(x, axis=a, keepdims=k),
    "reduce_l1_norm": lambda x, a, k: np.sum(np.abs(x), axis=a, keepdims=k),
    "reduce_l2_norm": lambda x, a, k: np.sqrt(np.sum(x * x, axis=a, keepdims=k)),
    "reduce_sum_square": lambda x, a, k: np.sum(x * x, axis=a, keepdims=k),
    "reduce_log_sum": lambda x, a, k: np.log(np.sum(x, axis=a, keepdims=k)),
    "reduce_log_sum_exp": lambda x, a, k: _logsumexp(x, a, k),
}


def _logsumexp(x: np.ndarray, axes: Any, keep: bool) -> np.ndarray:
    top = np.max(x, axis=axes, keepdims=True)
    out = np.log(np.sum(np.exp(x - top), axis=axes, keepdims=True)) + top
    return np.asarray(out if keep else np.squeeze(out, axis=axes))


def _reduce(op: Any) -> np.ndarray:
    # coremltools' reduce value_inference passes numpy bools as keepdims, which numpy 2 rejects.
    x = np.asarray(op.x.val)
    x = x.astype(np.float64) if x.dtype.kind == "f" else x
    axes = None if op.axes is None else tuple(int(a) for a in np.asarray(op.axes.val).reshape(-1))
    keep = bool(_val(op.keep_dims, False))
    return np.asarray(_REDUCERS[op.op_type](x, axes, keep))


for _name in _REDUCERS:
    KERNELS[_name] = _reduce


@kernel("reduce_argmax", "reduce_argmin")
def reduce_arg(op: Any) -> np.ndarray:
    x = np.asarray(op.x.val)
    axis = int(_val(op.axis, -1))
    fn = np.argmax if op.op_type == "reduce_argmax" else np.argmin
    return np.asarray(fn(x, axis=axis, keepdims=bool(_val(op.keep_dims, False))))


@kernel("flatten2d")
def flatten2d(op: Any) -> np.ndarray:
    # coremltools' value_inference fails for axis=0 (np.prod of an empty shape is a float).
    x = np.asarray(op.x.val)
    axis = int(_val(op.axis, 1)) % max(x.ndim, 1)
    return x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)
