"""The optional ``unsupported_ops`` hook agrees with what ONNX Runtime really refuses."""

from __future__ import annotations

from typing import Any

import onnx
import pytest
from onnx import TensorProto, helper

import unirun
from unirun import Device, UnsupportedModelError
from unirun.backend import SupportsOpCheck
from unirun.source import OnnxModel
from unirun.testing import conv_net, embedding_model, matmul_symbolic, mlp, multi_io
from unirun_onnxruntime import OnnxRuntimeBackend

CPU = Device("cpu")


def _unary(op: str, elem: int, opset: int, domain: str = "") -> Any:
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"], name="the_node", domain=domain)],
        "one_op",
        [helper.make_tensor_value_info("x", elem, [2, 3])],
        [helper.make_tensor_value_info("y", elem, [2, 3])],
    )
    opsets = [helper.make_opsetid("", opset)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model


def test_the_backend_implements_the_optional_hook() -> None:
    assert isinstance(OnnxRuntimeBackend(), SupportsOpCheck)


@pytest.mark.parametrize("build", [conv_net, mlp, matmul_symbolic, embedding_model, multi_io])
def test_models_onnx_runtime_runs_have_nothing_unsupported(build: Any) -> None:
    model = OnnxModel.from_source(build())
    assert OnnxRuntimeBackend().unsupported_ops(model, CPU, {}) == []
    unirun.load(model.proto, backend="onnxruntime").close()


@pytest.mark.parametrize(
    ("model", "refused"),
    [
        # no kernel for Relu on int64 at opset 14+: a type the CPU provider lacks
        (_unary("Relu", TensorProto.INT64, 17), True),
        # float16 Relu has no kernel either, but the CPU provider inserts casts to float
        (_unary("Relu", TensorProto.FLOAT16, 17), False),
        (_unary("Relu", TensorProto.INT32, 17), False),
        # an operator of a domain nobody registered
        (_unary("Frobnicate", TensorProto.FLOAT, 17, domain="com.example"), True),
    ],
    ids=["int64-relu", "fp16-relu", "int32-relu", "custom-domain"],
)
def test_answer_matches_what_loading_does(model: Any, refused: bool) -> None:
    found = OnnxRuntimeBackend().unsupported_ops(OnnxModel.from_source(model), CPU, {})
    assert found == ([("the_node", model.graph.node[0].op_type)] if refused else [])
    if refused:
        with pytest.raises(UnsupportedModelError):
            unirun.load(model, backend="onnxruntime", cache=False)
    else:
        unirun.load(model, backend="onnxruntime", cache=False).close()


def test_nodes_inside_subgraphs_are_checked() -> None:
    inner = _unary("Relu", TensorProto.INT64, 17).graph
    branch = helper.make_graph(list(inner.node), "branch", [], list(inner.output))
    outer = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["x_int"], name="outer_relu"),
            helper.make_node(
                "If", ["cond"], ["y"], name="the_if", then_branch=branch, else_branch=branch
            ),
        ],
        "with_if",
        [
            helper.make_tensor_value_info("x", TensorProto.INT64, [2, 3]),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.INT64, [2, 3])],
    )
    model = helper.make_model(outer, opset_imports=[helper.make_opsetid("", 17)])
    found = OnnxRuntimeBackend().unsupported_ops(OnnxModel.from_source(model), CPU, {})
    assert ("outer_relu", "Relu") in found
    assert [name for name, _ in found].count("the_node") == 2


def test_a_device_this_build_lacks_is_unknown() -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime build has CUDA; the answer is then known")
    model = OnnxModel.from_source(onnx.ModelProto.FromString(mlp().SerializeToString()))
    assert OnnxRuntimeBackend().unsupported_ops(model, Device("cuda", 0), {}) is None
