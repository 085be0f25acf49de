"""The checks have teeth: seed a plausible translation bug and the comparison must fail.

Each test first shows the model passes with the real lowering, then swaps in a wrong one
(through the public register_lowering hook, or by patching a table the lowering reads) and
asserts that the ONNX Runtime comparison now reports a mismatch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from onnx import TensorProto, helper

import unirun_coreml as uc
from unirun_coreml._translate import _registry
from unirun_coreml._translate.ops import _conv, _pool, _resize

F32 = np.float32


@contextmanager
def seeded(op_type: str, **wrong_attrs: Any) -> Iterator[None]:
    """Lower ``op_type`` with the built-in lowering, but with some attributes overridden."""
    builtin = _registry.lookup("", op_type)
    assert builtin is not None

    def wrong(ctx: Any, node: Any) -> Any:
        return builtin.fn(ctx, dataclasses.replace(node, attrs={**node.attrs, **wrong_attrs}))

    uc.register_lowering(op_type, wrong)
    try:
        yield
    finally:
        uc.unregister_lowering(op_type)


def _fails(harness: Any, model: Any, feeds: dict[str, np.ndarray], **kwargs: Any) -> bool:
    reports = harness.compare(model, feeds, **kwargs)
    return not all(r.ok for r in reports.values())


def _conv_model(harness: Any, rng: np.random.Generator, **attrs: Any) -> tuple[Any, Any]:
    w = rng.standard_normal((2, 3, 3, 3)).astype(F32)
    model = harness.model(
        [helper.make_node("Conv", ["x", "w"], ["y"], **attrs)],
        {"x": (F32, (1, 3, 7, 8))},
        ["y"],
        {"w": w},
    )
    return model, {"x": rng.standard_normal((1, 3, 7, 8)).astype(F32)}


def test_pad_order(harness: Any, rng: np.random.Generator, monkeypatch: Any) -> None:
    model, feeds = _conv_model(harness, rng, pads=[0, 1, 2, 1])
    assert not _fails(harness, model, feeds)
    # The classic bug: hand MIL ONNX's [begins…, ends…] instead of [b0, e0, b1, e1].
    monkeypatch.setattr(_conv, "interleave", lambda pads, spatial: list(pads))
    assert _fails(harness, model, feeds)


def test_same_upper_vs_lower(harness: Any, rng: np.random.Generator, monkeypatch: Any) -> None:
    model, feeds = _conv_model(harness, rng, auto_pad="SAME_UPPER", strides=[2, 2])
    assert not _fails(harness, model, feeds)
    monkeypatch.setitem(_conv._AUTO_PAD, "SAME_UPPER", "same_lower")
    assert _fails(harness, model, feeds)


def _avg_pool(harness: Any, rng: np.random.Generator, **attrs: Any) -> tuple[Any, Any]:
    model = harness.model(
        [helper.make_node("AveragePool", ["x"], ["y"], **attrs)], {"x": (F32, (1, 2, 6, 6))}, ["y"]
    )
    return model, {"x": rng.standard_normal((1, 2, 6, 6)).astype(F32)}


def test_count_include_pad_inverted(harness: Any, rng: np.random.Generator) -> None:
    model, feeds = _avg_pool(harness, rng, kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    assert not _fails(harness, model, feeds)
    with seeded("AveragePool", count_include_pad=1):
        assert _fails(harness, model, feeds)


def test_pool_pad_order(harness: Any, rng: np.random.Generator, monkeypatch: Any) -> None:
    model, feeds = _avg_pool(harness, rng, kernel_shape=[3, 3], pads=[0, 1, 2, 1])
    assert not _fails(harness, model, feeds)
    monkeypatch.setattr(_pool, "interleave", lambda pads, spatial: list(pads))
    assert _fails(harness, model, feeds)


def test_ceil_mode_ignored(harness: Any, rng: np.random.Generator) -> None:
    model = harness.model(
        [
            helper.make_node(
                "MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1
            )
        ],
        {"x": (F32, (1, 2, 8, 8))},
        ["y"],
    )
    feeds = {"x": rng.standard_normal((1, 2, 8, 8)).astype(F32)}
    assert not _fails(harness, model, feeds)
    with seeded("MaxPool", ceil_mode=0):
        assert _fails(harness, model, feeds)  # the output shape itself differs


def test_gemm_alpha_ignored(harness: Any, rng: np.random.Generator) -> None:
    model = harness.model(
        [helper.make_node("Gemm", ["a", "b", "c"], ["y"], alpha=0.7)],
        {"a": (F32, (3, 4))},
        ["y"],
        {"b": rng.standard_normal((4, 5)).astype(F32), "c": rng.standard_normal(5).astype(F32)},
    )
    feeds = {"a": rng.standard_normal((3, 4)).astype(F32)}
    assert not _fails(harness, model, feeds)
    with seeded("Gemm", alpha=1.0):
        assert _fails(harness, model, feeds)


def test_softmax_axis(harness: Any, rng: np.random.Generator) -> None:
    # Opset 11 Softmax normalizes everything from `axis` on; opset 13 only `axis`.
    model = harness.model(
        [helper.make_node("Softmax", ["x"], ["y"], axis=1)],
        {"x": (F32, (2, 3, 4))},
        ["y"],
        opset=11,
    )
    feeds = {"x": rng.standard_normal((2, 3, 4)).astype(F32)}
    assert not _fails(harness, model, feeds)
    with seeded("Softmax", axis=-1):
        assert _fails(harness, model, feeds)


def test_layer_norm_epsilon_dropped(harness: Any, rng: np.random.Generator) -> None:
    model = harness.model(
        [helper.make_node("LayerNormalization", ["x", "s"], ["y"], epsilon=1e-2)],
        {"x": (F32, (2, 8))},
        ["y"],
        {"s": np.ones(8, F32)},
    )
    feeds = {"x": rng.standard_normal((2, 8)).astype(F32)}
    assert not _fails(harness, model, feeds)
    with seeded("LayerNormalization", epsilon=1e-5):
        assert _fails(harness, model, feeds)


def test_gelu_mode(harness: Any, rng: np.random.Generator) -> None:
    model = harness.model(
        [helper.make_node("Gelu", ["x"], ["y"])], {"x": (F32, (4, 8))}, ["y"], opset=20
    )
    feeds = {"x": (rng.standard_normal((4, 8)) * 2).astype(F32)}
    assert not _fails(harness, model, feeds)
    with seeded("Gelu", approximate="tanh"):
        assert _fails(harness, model, feeds)


def test_resize_coordinate_mode(harness: Any, rng: np.random.Generator, monkeypatch: Any) -> None:
    node = helper.make_node("Resize", ["x", "roi", "s"], ["y"], mode="linear")
    model = harness.model(
        [node],
        {"x": (F32, (1, 1, 4, 4))},
        ["y"],
        {"roi": np.zeros(0, F32), "s": np.array([1, 1, 2, 2], F32)},
        opset=13,
    )
    feeds = {"x": rng.standard_normal((1, 1, 4, 4)).astype(F32)}
    assert not _fails(harness, model, feeds)
    monkeypatch.setitem(_resize._SAMPLING, "half_pixel", "DEFAULT")
    assert _fails(harness, model, feeds)


def test_integer_div_floors(harness: Any) -> None:
    model = harness.model(
        [helper.make_node("Div", ["a", "b"], ["y"])],
        {"a": (np.int64, (4,))},
        {"y": np.int64},
        {"b": np.array([2, 2, -2, 3], np.int64)},
    )
    feeds = {"a": np.array([7, -7, 7, -8], np.int64)}
    assert not _fails(harness, model, feeds)

    def floor_div(ctx: Any, node: Any) -> Any:
        from coremltools.converters.mil.mil import Builder as mb

        return mb.floor_div(x=ctx.required(node, 0), y=ctx.required(node, 1).astype(np.int32))

    uc.register_lowering("Div", floor_div)
    try:
        assert _fails(harness, model, feeds)
    finally:
        uc.unregister_lowering("Div")


def test_cast_semantics(harness: Any) -> None:
    # float → int truncates toward zero in ONNX; a rounding lowering must be caught.
    model = harness.model(
        [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.INT32)],
        {"x": (F32, (4,))},
        {"y": np.int32},
    )
    feeds = {"x": np.array([1.7, -1.7, 2.5, -0.4], F32)}
    assert not _fails(harness, model, feeds)

    def rounding(ctx: Any, node: Any) -> Any:
        from coremltools.converters.mil.mil import Builder as mb

        return mb.cast(x=mb.round(x=ctx.required(node, 0)), dtype="int32")

    uc.register_lowering("Cast", rounding)
    try:
        assert _fails(harness, model, feeds)
    finally:
        uc.unregister_lowering("Cast")
