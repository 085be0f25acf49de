"""Unary math, activations, Softmax/LogSoftmax, Identity and Dropout."""

from __future__ import annotations

from typing import Any

import numpy as np
from coremltools.converters.mil.mil import Builder as mb

from .._context import Context
from .._mil import Value, arg, dim, normalize_axis, np_dtype, rank, scalar, shape_tensor
from .._node import Node
from .._registry import lowering

_UNARY = {
    "Relu": "relu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "Exp": "exp",
    "Sqrt": "sqrt",
    "Abs": "abs",
    "Floor": "floor",
    "Ceil": "ceil",
    "Round": "round",
    "Sin": "sin",
    "Cos": "cos",
    "Tan": "tan",
    "Asin": "asin",
    "Acos": "acos",
    "Atan": "atan",
    "Sinh": "sinh",
    "Cosh": "cosh",
    "Erf": "erf",
    "Softsign": "softsign",
    "Softplus": "softplus",
    "Sign": "sign",
}


def _unary(op: str) -> Any:
    def lower(ctx: Context, node: Node) -> Value:
        return getattr(mb, op)(x=arg(ctx.required(node, 0)))

    return lower


for _onnx, _mil_op in _UNARY.items():
    lowering(_onnx)(_unary(_mil_op))


@lowering("Log")
def _log(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    # MIL log computes log(x + epsilon), epsilon 1e-45 by default: log(0) would not be -inf.
    return mb.log(x=x, epsilon=scalar(0.0, x))


@lowering("Identity")
def _identity(ctx: Context, node: Node) -> Value:
    return ctx.required(node, 0)


@lowering("Dropout")
def _dropout(ctx: Context, node: Node) -> Value:
    # Inference: output = input. The optional mask output is all true.
    x = ctx.required(node, 0)
    training = ctx.input(node, 2)
    if training is not None and (not isinstance(training, np.ndarray) or bool(training)):
        raise node.error("training-mode Dropout is random; only inference mode is supported")
    if len(node.outputs) > 1 and node.outputs[1]:
        ones = mb.fill(shape=arg(shape_tensor(x)), value=True)
        return [x, ones]
    return x


@lowering("Neg")
def _neg(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    return mb.mul(x=x, y=scalar(-1, x))


@lowering("Reciprocal")
def _reciprocal(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    # Not MIL `inverse`: it adds an epsilon (1e-4 by default) to x.
    return mb.real_div(x=scalar(1, x), y=x)


@lowering("LeakyRelu")
def _leaky_relu(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    return mb.leaky_relu(x=x, alpha=scalar(node.attr("alpha", 0.01), x))


@lowering("Elu")
def _elu(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    return mb.elu(x=x, alpha=scalar(node.attr("alpha", 1.0), x))


@lowering("Selu")
def _selu(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    alpha = node.attr("alpha", 1.67326319217681884765625)
    gamma = node.attr("gamma", 1.05070102214813232421875)
    return mb.mul(x=mb.elu(x=x, alpha=scalar(alpha, x)), y=scalar(gamma, x))


@lowering("Celu")
def _celu(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    alpha = node.attr("alpha", 1.0)
    inner = mb.elu(x=mb.real_div(x=x, y=scalar(alpha, x)), alpha=scalar(1.0, x))
    return mb.mul(x=inner, y=scalar(alpha, x))


@lowering("HardSigmoid")
def _hard_sigmoid(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    return mb.sigmoid_hard(
        x=x, alpha=scalar(node.attr("alpha", 0.2), x), beta=scalar(node.attr("beta", 0.5), x)
    )


@lowering("HardSwish")
def _hard_swish(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    gate = mb.sigmoid_hard(x=x, alpha=scalar(1.0 / 6.0, x), beta=scalar(0.5, x))
    return mb.mul(x=x, y=gate)


@lowering("ThresholdedRelu")
def _thresholded_relu(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    # Not MIL thresholded_relu, which keeps x == alpha; ONNX keeps only x > alpha.
    keep = mb.greater(x=x, y=scalar(node.attr("alpha", 1.0), x))
    return mb.select(cond=keep, a=x, b=scalar(0, x))


@lowering("Mish")
def _mish(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    return mb.mul(x=x, y=mb.tanh(x=mb.softplus(x=x)))


@lowering("Gelu")
def _gelu(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    mode = "TANH_APPROXIMATION" if node.attr("approximate", "none") == "tanh" else "EXACT"
    return mb.gelu(x=x, mode=mode)


@lowering("PRelu")
def _prelu(ctx: Context, node: Node) -> Value:
    x, slope = ctx.required(node, 0), ctx.required(node, 1)
    channels = dim(x, 1) if rank(x) >= 3 else None
    if isinstance(slope, np.ndarray) and channels is not None and slope.ndim <= rank(x):
        # MIL prelu takes one slope per channel (axis 1) of a rank >= 3 input.
        padded = (1,) * (rank(x) - slope.ndim) + slope.shape
        if all(d == 1 for i, d in enumerate(padded) if i != 1) and padded[1] in (1, channels):
            alpha = np.broadcast_to(slope.reshape(-1), (channels,)).astype(np_dtype(x))
            return mb.prelu(x=x, alpha=alpha)
    negative = mb.mul(x=mb.minimum(x=x, y=scalar(0, x)), y=arg(slope))
    return mb.add(x=mb.relu(x=x), y=negative)


def _softmax_2d(x: Value, axis: int, fn: Any) -> Value:
    # Before opset 13, Softmax flattens to 2-D at `axis` and normalizes the whole tail.
    if axis == rank(x) - 1:
        return fn(x, -1)
    out = fn(mb.flatten2d(x=x, axis=axis), -1)
    return mb.reshape(x=out, shape=arg(shape_tensor(x)))


def _softmax(x: Value, axis: int) -> Value:
    return mb.softmax(x=x, axis=axis)


def _log_softmax(x: Value, axis: int) -> Value:
    return mb.sub(x=x, y=mb.reduce_log_sum_exp(x=x, axes=[axis], keep_dims=True))


@lowering("Softmax", "LogSoftmax")
def _softmax_like(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    fn = _softmax if node.op_type == "Softmax" else _log_softmax
    if node.opset >= 13:
        return fn(x, int(node.attr("axis", -1)))
    return _softmax_2d(x, normalize_axis(int(node.attr("axis", 1)), rank(x)), fn)
