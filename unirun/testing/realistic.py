"""Models shaped like the ones users bring, built small: the features that make invented inputs,
fixed shapes and engines' shape inference go wrong on real models.

- :func:`pooled_cnn`: an OCR-style CNN with dynamic batch/height/width (dimension names that
  say nothing, as exporters write them) whose AveragePool needs a minimum input size.
- :func:`streaming_vad`: a streaming voice-activity model: reflect ``Pad``, a strided ``Conv``
  front end, an ``LSTM`` inside ``If`` branches chosen by a scalar int64 sample-rate input, and
  a recurrent state carried from an output back to an input.
- :func:`byte_classifier`: a byte-level classifier: int32 bytes through ``Gather`` on a
  257-row table (256 byte values and padding), mean pooling, a linear layer and Softmax.

Deterministic (fixed seeds, opset 17), like every builder in :mod:`unirun.testing.models`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .models._onnx import _init, _model

__all__ = ["byte_classifier", "pooled_cnn", "streaming_vad"]


def pooled_cnn(pool: int = 3, classes: int = 5, seed: int = 4) -> Any:
    """``x`` float32 [N, 3, H, W] (every size dynamic) → ``logits`` [N, classes].

    Three stride-2 3×3 convolutions divide H and W by 8 (rounding up), then an AveragePool with a
    ``pool``×``pool`` kernel and no padding: inputs with ``ceil(H / 8) < pool`` (a 1×1 image,
    say) have nothing to pool and the engines refuse them. The smallest input is
    ``8 * pool - 7`` pixels a side."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    f32 = np.float32

    def weight(name: str, *shape: int) -> Any:
        return _init(name, (rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(f32))

    inits = [
        weight("w1", 8, 3, 3, 3),
        weight("w2", 8, 8, 3, 3),
        weight("w3", 16, 8, 3, 3),
        weight("fc_w", classes, 16),
        _init("fc_b", (rng.standard_normal(classes) * 0.1).astype(f32)),
    ]
    nodes = []
    for i, (src, w) in enumerate((("x", "w1"), ("r1", "w2"), ("r2", "w3")), 1):
        nodes.append(
            helper.make_node(
                "Conv", [src, w], [f"c{i}"], pads=[1, 1, 1, 1], strides=[2, 2], name=f"conv{i}"
            )
        )
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}"))
    nodes += [
        helper.make_node("AveragePool", ["r3"], ["pooled"], kernel_shape=[pool, pool], name="pool"),
        helper.make_node("GlobalAveragePool", ["pooled"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], axis=1, name="flatten"),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], transB=1, name="fc"),
    ]
    batch, height, width = (f"p2o.DynamicDimension.{i}" for i in range(3))
    graph = helper.make_graph(
        nodes,
        "pooled_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, height, width])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])],
        inits,
    )
    return _model(graph)


def streaming_vad(pad: int = 96, hidden: int = 32, seed: int = 5) -> Any:
    """One step of a streaming detector: ``input`` float32 [?, ?] (batch, samples), ``state``
    float32 [2, ?, hidden] and ``sr`` int64 scalar → ``output`` [?, 1] (a probability) and
    ``stateN`` [2, ?, hidden], which the caller feeds back as ``state`` on the next chunk.

    ``If(sr == 16000)`` picks the 16 kHz branch; the other branch (meant for 8000) uses a
    shorter window. Each branch reflect-pads the chunk at its end (``pad`` samples at 16 kHz,
    so a chunk needs more than ``pad`` samples), runs a strided Conv front end, an LSTM that
    starts from ``state`` and a linear head. The dimensions are unnamed, as in exported models.
    """
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    f32 = np.float32
    channels = 16

    def weight(name: str, *shape: int) -> Any:
        return _init(name, (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(f32))

    inits = [
        weight("conv16k", channels, 1, 128),
        weight("conv8k", channels, 1, 64),
        weight("lstm_w", 1, 4 * hidden, channels),
        weight("lstm_r", 1, 4 * hidden, hidden),
        _init("lstm_b", np.zeros((1, 8 * hidden), f32)),
        weight("head_w", hidden, 1),
        _init("sr16k", np.array(16000, np.int64)),
        _init("axis1", np.array([1], np.int64)),
        _init("axis0", np.array([0], np.int64)),
        _init("pads16k", np.array([0, 0, 0, 0, 0, pad], np.int64)),
        _init("pads8k", np.array([0, 0, 0, 0, 0, pad // 2], np.int64)),
        _init("zero", np.array([0], np.int64)),
        _init("one", np.array([1], np.int64)),
        _init("two", np.array([2], np.int64)),
    ]

    def branch(tag: str, kernel: str, stride: int) -> Any:
        t = f"_{tag}"
        node = helper.make_node
        nodes = [
            node("Unsqueeze", ["input", "axis1"], [f"x3{t}"], name=f"unsqueeze{t}"),
            node("Pad", [f"x3{t}", f"pads{tag}"], [f"padded{t}"], mode="reflect", name=f"pad{t}"),
            node("Conv", [f"padded{t}", kernel], [f"spec{t}"], strides=[stride], name=f"stft{t}"),
            node("Relu", [f"spec{t}"], [f"feat{t}"], name=f"relu{t}"),
            node("Transpose", [f"feat{t}"], [f"seq{t}"], perm=[2, 0, 1], name=f"to_time{t}"),
            node("Slice", ["state", "zero", "one", "axis0"], [f"h0{t}"], name=f"h0{t}"),
            node("Slice", ["state", "one", "two", "axis0"], [f"c0{t}"], name=f"c0{t}"),
            node(
                "LSTM",
                [f"seq{t}", "lstm_w", "lstm_r", "lstm_b", "", f"h0{t}", f"c0{t}"],
                [f"y{t}", f"yh{t}", f"yc{t}"],
                hidden_size=hidden,
                name=f"lstm{t}",
            ),
            node("Concat", [f"yh{t}", f"yc{t}"], [f"state_out{t}"], axis=0, name=f"state{t}"),
            node("Squeeze", [f"yh{t}", "axis0"], [f"last{t}"], name=f"last{t}"),
            node("MatMul", [f"last{t}", "head_w"], [f"logit{t}"], name=f"head{t}"),
            node("Sigmoid", [f"logit{t}"], [f"prob{t}"], name=f"sigmoid{t}"),
        ]
        return helper.make_graph(
            nodes,
            f"branch{t}",
            [],
            [
                helper.make_tensor_value_info(f"prob{t}", TensorProto.FLOAT, [None, 1]),
                helper.make_tensor_value_info(
                    f"state_out{t}", TensorProto.FLOAT, [2, None, hidden]
                ),
            ],
        )

    nodes = [
        helper.make_node("Equal", ["sr", "sr16k"], ["is16k"], name="is_16k"),
        helper.make_node(
            "If",
            ["is16k"],
            ["output", "stateN"],
            then_branch=branch("16k", "conv16k", 64),
            else_branch=branch("8k", "conv8k", 32),
            name="by_rate",
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "streaming_vad",
        [
            helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, None]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, None, hidden]),
            helper.make_tensor_value_info("sr", TensorProto.INT64, []),
        ],
        [
            helper.make_tensor_value_info("output", TensorProto.FLOAT, [None, 1]),
            helper.make_tensor_value_info("stateN", TensorProto.FLOAT, [2, None, hidden]),
        ],
        inits,
    )
    return _model(graph)


def byte_classifier(vocab: int = 257, dim: int = 16, classes: int = 8, seed: int = 6) -> Any:
    """``bytes`` int32 [batch, length] (values 0..vocab-1) → ``probs`` float32 [batch, classes]:
    Gather on an embedding table, ReduceMean over the bytes, Gemm, Softmax. An index outside
    the table is an error in every engine."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    f32 = np.float32
    inits = [
        _init("table", (rng.standard_normal((vocab, dim)) * 0.5).astype(f32)),
        _init("fc_w", (rng.standard_normal((classes, dim)) / np.sqrt(dim)).astype(f32)),
        _init("fc_b", (rng.standard_normal(classes) * 0.1).astype(f32)),
    ]
    nodes = [
        helper.make_node("Gather", ["table", "bytes"], ["emb"], axis=0, name="embed"),
        helper.make_node("ReduceMean", ["emb"], ["mean"], axes=[1], keepdims=0, name="mean"),
        helper.make_node("Gemm", ["mean", "fc_w", "fc_b"], ["logits"], transB=1, name="fc"),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1, name="softmax"),
    ]
    graph = helper.make_graph(
        nodes,
        "byte_classifier",
        [helper.make_tensor_value_info("bytes", TensorProto.INT32, ["batch", "length"])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", classes])],
        inits,
    )
    return _model(graph)
