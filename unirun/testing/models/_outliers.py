"""A model and inputs that int8 activation quantization cannot represent (outlier channels)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._onnx import _init, _model

__all__ = ["outlier_inputs", "outlier_mlp"]


def outlier_mlp(features: int = 64, hidden: int = 64, seed: int = 5) -> Any:
    """A model int8 cannot represent: ``x`` float32 [batch, features] feeds a MatMul whose
    output ignores feature 0 (its weight row is zero), while ``outlier_inputs`` puts that
    feature at ±``outlier``. One per-tensor int8 scale for ``x`` then rounds every other
    feature to zero (the outlier-channel problem of large language models), so activation
    quantization is far off; int8 weights alone stay accurate. ``y`` [batch, hidden]."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((features, hidden)) / np.sqrt(features)
    w1[0] = 0.0
    w2 = rng.standard_normal((hidden, hidden)) / np.sqrt(hidden)
    inits = [
        _init("w1", w1.astype(np.float32)),
        _init("w2", w2.astype(np.float32)),
        _init("b", (rng.standard_normal(hidden) * 0.1).astype(np.float32)),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"], name="mm1"),
        helper.make_node("Add", ["h0", "b"], ["h1"], name="bias"),
        helper.make_node("Relu", ["h1"], ["h2"], name="relu"),
        helper.make_node("MatMul", ["h2", "w2"], ["y"], name="mm2"),
    ]
    graph = helper.make_graph(
        nodes,
        "outlier_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", hidden])],
        inits,
    )
    return _model(graph)


def outlier_inputs(
    count: int, batch: int = 4, features: int = 64, outlier: float = 1000.0, seed: int = 6
) -> list[dict[str, np.ndarray[Any, Any]]]:
    """Feeds for :func:`outlier_mlp`: standard normal, feature 0 at ±``outlier``."""
    rng = np.random.default_rng(seed)
    feeds = []
    for _ in range(count):
        x = rng.standard_normal((batch, features)).astype(np.float32)
        x[:, 0] = outlier * np.sign(x[:, 0] + 0.5)
        feeds.append({"x": x})
    return feeds
