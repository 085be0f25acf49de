"""A stateful streaming voice-activity model with nested ``If`` branches and an LSTM step."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._onnx import _init, _model

__all__ = ["streaming_vad"]


def streaming_vad(hidden: int = 16, channels: int = 8, seed: int = 4) -> Any:
    """A stateful streaming voice-activity model shaped like the public ONNX exports of such
    models: inputs ``input`` float32 [batch, samples] (one audio chunk), ``state`` float32
    [2, batch, hidden] (the LSTM's h and c: feed each call's ``stateN`` to the next) and ``sr``
    (an int64 scalar, the sample rate); outputs ``output`` float32 [batch, 1] (a probability)
    and ``stateN`` [2, batch, hidden].

    ``If(sr == 16000)`` picks one of two branches; each pads the chunk with a reflect ``Pad``,
    frames it with two strided Convs, squeezes the time axis the way exporters write
    ``x.squeeze(-1)`` for a dynamic size (an inner ``If`` on whether it is 1), and runs an LSTM
    step, a Linear and a Sigmoid. Chunks of 512 samples at 16000 and 256 at 8000 give one frame
    (the sizes the model is for). With fixed input dims, the branch *not* taken sees a chunk of
    the wrong length: an engine that infers shapes through both branches finds an LSTM input of
    rank 4 there, although the branch that runs is fine.
    """
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    f32 = np.float32

    def weights(shape: tuple[int, ...], scale: float) -> np.ndarray[Any, Any]:
        return (rng.standard_normal(shape) * scale).astype(f32)

    inits = [
        _init("sr_16k", np.array(16000, np.int64)),
        _init("time_axis", np.array(2, np.int64)),
        _init("one", np.array(1, np.int64)),
        _init("axes_0", np.array([0], np.int64)),
        _init("axes_1", np.array([1], np.int64)),
        _init("axes_2", np.array([2], np.int64)),
        _init("h_start", np.array([0], np.int64)),
        _init("c_start", np.array([1], np.int64)),
        _init("c_end", np.array([2], np.int64)),
        _init("head_w", weights((hidden, 1), 0.5)),
        _init("head_b", np.zeros(1, f32)),
    ]
    nodes = [
        helper.make_node("Equal", ["sr", "sr_16k"], ["is_16k"], name="is_16k"),
        helper.make_node("Slice", ["state", "h_start", "c_start", "axes_0"], ["h0"], name="h0"),
        helper.make_node("Slice", ["state", "c_start", "c_end", "axes_0"], ["c0"], name="c0"),
    ]

    def branch(tag: str, pad: int, frame: int, group: int) -> Any:
        """Reflect-pad by ``pad``, Conv(kernel=stride=``frame``), Conv(kernel=stride=``group``)."""
        p = f"{tag}_"
        inits.extend(
            [
                _init(p + "pads", np.array([0, 0, 0, pad], np.int64)),
                _init(p + "w1", weights((channels, 1, frame), 1.0 / np.sqrt(frame))),
                _init(p + "w2", weights((channels, channels, group), 0.5)),
                _init(p + "lstm_w", weights((1, 4 * hidden, channels), 0.3)),
                _init(p + "lstm_r", weights((1, 4 * hidden, hidden), 0.3)),
                _init(p + "lstm_b", weights((1, 8 * hidden), 0.1)),
            ]
        )
        squeezed = helper.make_graph(
            [helper.make_node("Squeeze", [p + "f2", "axes_2"], [p + "sq"], name=p + "squeeze")],
            p + "squeeze_time",
            [],
            [helper.make_tensor_value_info(p + "sq", TensorProto.FLOAT, None)],
        )
        pooled = helper.make_graph(
            [
                helper.make_node(
                    "ReduceMean", [p + "f2"], [p + "mean"], axes=[2], keepdims=0, name=p + "mean"
                )
            ],
            p + "average_time",
            [],
            [helper.make_tensor_value_info(p + "mean", TensorProto.FLOAT, None)],
        )
        body = [
            helper.make_node("Pad", ["input", p + "pads"], [p + "padded"], mode="reflect"),
            helper.make_node("Unsqueeze", [p + "padded", "axes_1"], [p + "wave"]),
            helper.make_node(
                "Conv", [p + "wave", p + "w1"], [p + "f1"], kernel_shape=[frame], strides=[frame]
            ),
            helper.make_node("Relu", [p + "f1"], [p + "r1"]),
            helper.make_node(
                "Conv", [p + "r1", p + "w2"], [p + "f2"], kernel_shape=[group], strides=[group]
            ),
            helper.make_node("Shape", [p + "f2"], [p + "f2_shape"]),
            helper.make_node("Gather", [p + "f2_shape", "time_axis"], [p + "frames"]),
            helper.make_node("Equal", [p + "frames", "one"], [p + "one_frame"]),
            helper.make_node(
                "If",
                [p + "one_frame"],
                [p + "step"],
                then_branch=squeezed,
                else_branch=pooled,
                name=p + "squeeze_if",
            ),
            helper.make_node("Unsqueeze", [p + "step", "axes_0"], [p + "x"]),
            helper.make_node(
                "LSTM",
                [p + "x", p + "lstm_w", p + "lstm_r", p + "lstm_b", "", "h0", "c0"],
                ["", p + "h", p + "c"],
                hidden_size=hidden,
                name=p + "lstm",
            ),
            helper.make_node("Squeeze", [p + "h", "axes_0"], [p + "h2"]),
            helper.make_node("MatMul", [p + "h2", "head_w"], [p + "logit0"]),
            helper.make_node("Add", [p + "logit0", "head_b"], [p + "logit"]),
            helper.make_node("Sigmoid", [p + "logit"], [p + "output"]),
            helper.make_node("Concat", [p + "h", p + "c"], [p + "stateN"], axis=0),
        ]
        return helper.make_graph(
            body,
            p + "branch",
            [],
            [
                helper.make_tensor_value_info(p + "output", TensorProto.FLOAT, None),
                helper.make_tensor_value_info(p + "stateN", TensorProto.FLOAT, None),
            ],
        )

    nodes.append(
        helper.make_node(
            "If",
            ["is_16k"],
            ["output", "stateN"],
            then_branch=branch("sr16k", pad=64, frame=192, group=3),
            else_branch=branch("sr8k", pad=32, frame=64, group=4),
            name="sample_rate_if",
        )
    )
    graph = helper.make_graph(
        nodes,
        "streaming_vad",
        [
            helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", "samples"]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "batch", hidden]),
            helper.make_tensor_value_info("sr", TensorProto.INT64, []),
        ],
        [
            helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 1]),
            helper.make_tensor_value_info("stateN", TensorProto.FLOAT, [2, "batch", hidden]),
        ],
        inits,
    )
    return _model(graph)
