"""Models with values that are not tensors at their edges: sequences, maps, optionals, and a
classifier as converters write it (labels and a sequence of maps of probabilities)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._onnx import OPSET, _init, _model

__all__ = ["ML_OPSET", "map_model", "optional_model", "sequence_model", "zipmap_classifier"]

ML_OPSET = 3  #: the ``ai.onnx.ml`` opset of the classic-ML builders


def _ml_model(graph: Any, opset: int = OPSET) -> Any:
    from onnx import helper

    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("ai.onnx.ml", ML_OPSET)],
        producer_name="unirun.testing",
    )
    model.ir_version = 8
    return model


def sequence_model() -> Any:
    """A sequence in and out: ``items`` seq(float32[?]) and ``x`` float32[?] → ``more``
    seq(float32[?]) (``x`` appended to ``items``) and ``count`` int64 [] (its length)."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("SequenceInsert", ["items", "x"], ["more"], name="insert"),
            helper.make_node("SequenceLength", ["more"], ["count"], name="length"),
        ],
        "sequence_model",
        [
            helper.make_tensor_sequence_value_info("items", TensorProto.FLOAT, [None]),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [None]),
        ],
        [
            helper.make_tensor_sequence_value_info("more", TensorProto.FLOAT, [None]),
            helper.make_tensor_value_info("count", TensorProto.INT64, []),
        ],
    )
    return _model(graph)


def map_model(keys: tuple[str, ...] = ("a", "b", "c")) -> Any:
    """A map in: ``features`` map(string, float32) → ``dense`` float32[len(keys)], the values
    of ``keys`` (0 where missing), by ``ai.onnx.ml`` DictVectorizer."""
    from onnx import TensorProto, helper

    value = helper.make_tensor_type_proto(TensorProto.FLOAT, None)
    graph = helper.make_graph(
        [
            helper.make_node(
                "DictVectorizer",
                ["features"],
                ["vector"],
                domain="ai.onnx.ml",
                string_vocabulary=list(keys),
                name="vectorize",
            ),
            helper.make_node("Reshape", ["vector", "flat"], ["dense"], name="flatten"),
        ],
        "map_model",
        [helper.make_value_info("features", helper.make_map_type_proto(TensorProto.STRING, value))],
        [helper.make_tensor_value_info("dense", TensorProto.FLOAT, [len(keys)])],
        [_init("flat", np.array([-1], np.int64))],
    )
    return _ml_model(graph)


def optional_model(size: int = 3) -> Any:
    """An optional in and out (opset 18): ``maybe`` optional(float32[size]) → ``has`` bool []
    (whether it is present) and ``echo`` optional(float32[size]) (it, or absent)."""
    from onnx import TensorProto, helper

    optional = helper.make_optional_type_proto(
        helper.make_tensor_type_proto(TensorProto.FLOAT, [size])
    )
    then_branch = helper.make_graph(
        [
            helper.make_node("OptionalGetElement", ["maybe"], ["value"]),
            helper.make_node("Optional", ["value"], ["present"]),
        ],
        "present",
        [],
        [helper.make_value_info("present", optional)],
    )
    else_branch = helper.make_graph(
        [
            helper.make_node(
                "Optional",
                [],
                ["absent"],
                type=helper.make_tensor_type_proto(TensorProto.FLOAT, [size]),
            )
        ],
        "absent",
        [],
        [helper.make_value_info("absent", optional)],
    )
    graph = helper.make_graph(
        [
            helper.make_node("OptionalHasElement", ["maybe"], ["has"], name="has"),
            helper.make_node(
                "If", ["has"], ["echo"], then_branch=then_branch, else_branch=else_branch
            ),
        ],
        "optional_model",
        [helper.make_value_info("maybe", optional)],
        [
            helper.make_tensor_value_info("has", TensorProto.BOOL, []),
            helper.make_value_info("echo", optional),
        ],
    )
    return _model(graph, opset=18)


def zipmap_classifier(
    features: int = 4, classes: int = 3, labels: str = "int", seed: int = 6
) -> Any:
    """A linear classifier as ``skl2onnx`` converts one by default: ``X`` float32[N, features]
    → ``label`` [N] (int64, or string with ``labels="string"``) and ``probabilities``
    seq(map(int64 or string, float32)), one map per row (``ai.onnx.ml`` LinearClassifier with
    softmax, then ZipMap)."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    coefficients = rng.standard_normal(classes * features).astype(np.float32)
    intercepts = rng.standard_normal(classes).astype(np.float32) * 0.1
    if labels == "string":
        names = [f"class_{i}" for i in range(classes)]
        label_attr: dict[str, Any] = {"classlabels_strings": names}
        zip_attr: dict[str, Any] = {"classlabels_strings": names}
        key, label_type = TensorProto.STRING, TensorProto.STRING
    else:
        label_attr = {"classlabels_ints": list(range(classes))}
        zip_attr = {"classlabels_int64s": list(range(classes))}
        key, label_type = TensorProto.INT64, TensorProto.INT64
    probabilities = helper.make_sequence_type_proto(
        helper.make_map_type_proto(key, helper.make_tensor_type_proto(TensorProto.FLOAT, None))
    )
    graph = helper.make_graph(
        [
            helper.make_node(
                "LinearClassifier",
                ["X"],
                ["label", "scores"],
                domain="ai.onnx.ml",
                coefficients=coefficients.tolist(),
                intercepts=intercepts.tolist(),
                post_transform="SOFTMAX",
                multi_class=1,
                name="classifier",
                **label_attr,
            ),
            helper.make_node(
                "ZipMap", ["scores"], ["probabilities"], domain="ai.onnx.ml", name="zip", **zip_attr
            ),
        ],
        "zipmap_classifier",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", features])],
        [
            helper.make_tensor_value_info("label", label_type, ["N"]),
            helper.make_value_info("probabilities", probabilities),
        ],
    )
    return _ml_model(graph)
