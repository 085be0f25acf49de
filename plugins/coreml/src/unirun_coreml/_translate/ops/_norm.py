"""BatchNormalization, InstanceNormalization, LayerNormalization, GroupNormalization, LRN."""

from __future__ import annotations

import numpy as np
from coremltools.converters.mil.mil import Builder as mb

from .._context import Context
from .._mil import Value, arg, dim, is_const, normalize_axis, np_dtype, rank, scalar, shape_tensor
from .._node import Node
from .._registry import lowering


def _channel_shape(x: Value) -> tuple[int, ...]:
    return (-1,) + (1,) * (rank(x) - 2)


def _per_channel(value: Value, x: Value) -> Value:
    if is_const(value):
        return arg(value).astype(np_dtype(x)).reshape(_channel_shape(x))
    return mb.reshape(x=value, shape=np.array(_channel_shape(x), np.int32))


def _affine(x: Value, scale: Value, bias: Value) -> Value:
    """x * scale + bias per channel (axis 1)."""
    if is_const(scale) and is_const(bias) and 3 <= rank(x) <= 5:
        # As batch_norm with epsilon 0: otherwise coremltools fuses mul+add into a batch_norm
        # with epsilon 1e-5, scaling the result by 1/sqrt(1 + 1e-5).
        dtype = np_dtype(x)
        channels = np.broadcast_shapes(scale.shape, bias.shape)
        ones = np.ones(channels, dtype)
        return mb.batch_norm(
            x=x,
            mean=ones * 0,
            variance=ones,
            gamma=scale.astype(dtype),
            beta=bias.astype(dtype),
            epsilon=scalar(0.0, x),
        )
    return mb.add(x=mb.mul(x=x, y=_per_channel(scale, x)), y=_per_channel(bias, x))


def _bn_check(node: Node) -> str | None:
    if node.attr("training_mode", 0) or any(node.outputs[1:]):
        return "training-mode BatchNormalization (running statistics outputs) is not supported"
    return None


@lowering("BatchNormalization", check=_bn_check)
def _batch_norm(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    scale, bias, mean, var = (ctx.required(node, i) for i in range(1, 5))
    eps = float(node.attr("epsilon", 1e-5))
    params = [scale, bias, mean, var]
    if all(is_const(p) for p in params) and 3 <= rank(x) <= 5:
        # Keep batch_norm whole: coremltools folds it into a preceding conv in fp32, which
        # is what keeps fp16 builds accurate when the variance is large.
        dtype = np_dtype(x)
        return mb.batch_norm(
            x=x,
            mean=mean.astype(dtype),
            variance=var.astype(dtype),
            gamma=scale.astype(dtype),
            beta=bias.astype(dtype),
            epsilon=scalar(eps, x),
        )
    if rank(x) == 2 and all(is_const(p) for p in params):
        dtype = np_dtype(x)
        inv = (scale / np.sqrt(var.astype(np.float64) + eps)).astype(dtype)
        shift = (bias - mean * inv).astype(dtype)
        return mb.add(x=mb.mul(x=x, y=inv), y=shift)
    centered = mb.sub(x=x, y=_per_channel(mean, x))
    denom = mb.sqrt(x=mb.add(x=_per_channel(var, x), y=scalar(eps, x)))
    normed = mb.real_div(x=centered, y=denom)
    return mb.add(x=mb.mul(x=normed, y=_per_channel(scale, x)), y=_per_channel(bias, x))


def _moments_norm(x: Value, axes: list[int], eps: float) -> Value:
    mean = mb.reduce_mean(x=x, axes=axes, keep_dims=True)
    centered = mb.sub(x=x, y=mean)
    var = mb.reduce_mean(x=mb.mul(x=centered, y=centered), axes=axes, keep_dims=True)
    return mb.real_div(x=centered, y=mb.sqrt(x=mb.add(x=var, y=scalar(eps, x))))


@lowering("InstanceNormalization")
def _instance_norm(ctx: Context, node: Node) -> Value:
    x, scale, bias = (ctx.required(node, i) for i in range(3))
    eps = float(node.attr("epsilon", 1e-5))
    if 3 <= rank(x) <= 4 and is_const(scale) and is_const(bias):
        dtype = np_dtype(x)
        return mb.instance_norm(
            x=x, gamma=scale.astype(dtype), beta=bias.astype(dtype), epsilon=scalar(eps, x)
        )
    return _affine(_moments_norm(x, list(range(2, rank(x))), eps), scale, bias)


def _layer_norm_check(node: Node) -> str | None:
    if any(node.outputs[1:]):
        return "LayerNormalization's Mean/InvStdDev outputs are not supported"
    return None


@lowering("LayerNormalization", check=_layer_norm_check)
def _layer_norm(ctx: Context, node: Node) -> Value:
    x, scale, bias = ctx.required(node, 0), ctx.input(node, 1), ctx.input(node, 2)
    r = rank(x)
    axes = list(range(normalize_axis(int(node.attr("axis", -1)), r), r))
    eps = scalar(float(node.attr("epsilon", 1e-5)), x)
    dims = [dim(x, a) for a in axes]
    normalized = tuple(d for d in dims if d is not None)
    kwargs = {}
    if len(normalized) == len(dims):
        for key, value in (("gamma", scale), ("beta", bias)):
            if value is not None and is_const(value):
                kwargs[key] = np.broadcast_to(arg(value), normalized).astype(np_dtype(x))
    out = mb.layer_norm(x=x, axes=axes, epsilon=eps, **kwargs)
    if scale is not None and "gamma" not in kwargs:
        out = mb.mul(x=out, y=arg(scale))
    if bias is not None and "beta" not in kwargs:
        out = mb.add(x=out, y=arg(bias))
    return out


@lowering("GroupNormalization")
def _group_norm(ctx: Context, node: Node) -> Value:
    x, scale, bias = (ctx.required(node, i) for i in range(3))
    groups = int(node.attr("num_groups"))
    eps = float(node.attr("epsilon", 1e-5))
    channels = dim(x, 1)
    if channels is None:
        raise node.error("needs a static channel dimension")
    batch = dim(x, 0)
    rest = [d for d in (dim(x, a) for a in range(2, rank(x))) if d is not None]
    if batch is not None:
        target = [batch, groups, -1]
    elif len(rest) == rank(x) - 2:
        target = [-1, groups, channels // groups * int(np.prod(rest))]
    else:
        raise node.error("needs a static batch or static spatial dimensions")
    grouped = mb.reshape(x=x, shape=np.array(target, np.int32))
    normed = mb.reshape(x=_moments_norm(grouped, [2], eps), shape=arg(shape_tensor(x)))
    if node.opset < 21 and is_const(scale) and scale.size == groups:
        # Opset 18 gives one scale/bias per group.
        scale = np.repeat(scale, channels // groups)
        bias = np.repeat(bias, channels // groups)
    return _affine(normed, scale, bias)


def _lrn_check(node: Node) -> str | None:
    if int(node.attr("size", 1)) % 2 == 0:
        return "LRN with an even size has no matching Core ML window"
    return None


@lowering("LRN", check=_lrn_check)
def _lrn(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    return mb.local_response_norm(
        x=x,
        size=np.int32(node.attr("size")),
        alpha=scalar(node.attr("alpha", 1e-4), x),
        beta=scalar(node.attr("beta", 0.75), x),
        k=scalar(node.attr("bias", 1.0), x),
    )
