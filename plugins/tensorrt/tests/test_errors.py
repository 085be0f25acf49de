"""Parser errors and CUDA errors to unirun errors.

The CUDA side uses the real cuda-bindings: on a machine without an NVIDIA driver every runtime
call returns ``cudaErrorInsufficientDriver``, and these tests assert what a user then gets. The
parser side cannot run TensorRT here; ``ParserIssue.read`` is checked against a stand-in with
the accessors of ``trt.ParserError`` (a pure translation, like test_config.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from unirun.errors import (
    CompileError,
    DeviceError,
    InferenceError,
    InvalidModelError,
    UnsupportedModelError,
)
from unirun.testing import models
from unirun_tensorrt import _cuda
from unirun_tensorrt._errors import LogCapture, ParserIssue, build_failure, cuda_error, parser_error
from unirun_tensorrt._runtime import _Outputs


def test_every_parser_error_is_reported_at_once_naming_nodes_and_ops() -> None:
    proto = models.conv_net(size=8)
    first, second = proto.graph.node[0], proto.graph.node[1]
    issues = [
        ParserIssue("UNSUPPORTED_NODE", "No importer registered for op: MyOp", 0, "", ""),
        ParserIssue("UNSUPPORTED_NODE_ATTR", "auto_pad SAME_LOWER", 1, "conv2", "Conv"),
        ParserIssue("INVALID_NODE", "bad weights", -1, "", ""),
    ]
    error = parser_error(issues, proto)
    assert isinstance(error, UnsupportedModelError)
    assert error.ops == [(first.name, first.op_type), ("conv2", "Conv")]
    text = str(error)
    assert "3 errors" in text
    assert f"node {first.name!r} ({first.op_type}): No importer registered for op: MyOp" in text
    assert "node 'conv2' (Conv): auto_pad SAME_LOWER" in text
    assert "the graph: bad weights" in text
    assert "backend='onnxruntime'" in text
    assert second.name  # the model names its nodes, so node indices resolve


def test_unreadable_and_other_parser_failures() -> None:
    unreadable = parser_error([ParserIssue("MODEL_DESERIALIZE_FAILED", "protobuf")])
    assert isinstance(unreadable, InvalidModelError)
    other = parser_error([ParserIssue("INVALID_VALUE", "negative pad", 2, "pad", "Pad")])
    assert type(other) is CompileError
    assert "node 'pad' (Pad): negative pad" in str(other)


def test_parser_issue_read_tolerates_missing_accessors() -> None:
    class Code:
        name = "UNSUPPORTED_NODE"

    class Recent:  # TensorRT 10/11 ParserError
        def code(self) -> Any:
            return Code()

        def desc(self) -> str:
            return "no importer"

        def node(self) -> int:
            return 4

        def node_name(self) -> str:
            return "/layer/Gelu"

        def node_operator(self) -> str:
            return "Gelu"

    class Older:  # no node_name()/node_operator()
        def code(self) -> str:
            return "ErrorCode.INVALID_GRAPH"

        def desc(self) -> str:
            return "cycle"

        def node(self) -> int:
            return -1

    assert ParserIssue.read(Recent()) == ParserIssue(
        "UNSUPPORTED_NODE", "no importer", 4, "/layer/Gelu", "Gelu"
    )
    assert ParserIssue.read(Older()) == ParserIssue("INVALID_GRAPH", "cycle", -1, "", "")


def test_build_failures_carry_the_logged_errors_of_their_own_thread() -> None:
    capture = LogCapture()
    capture.add("outside any build: dropped")
    with capture.collect() as lines:
        capture.add("Error Code 4: Internal Error (no implementation for node)")
    assert lines == ["Error Code 4: Internal Error (no implementation for node)"]
    error = build_failure(lines, "build the engine")
    assert isinstance(error, CompileError)
    assert "no implementation for node" in str(error)
    assert "logged no error" in str(build_failure([], "build the engine"))


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("cudaErrorInsufficientDriver", DeviceError),
        ("cudaErrorNoDevice", DeviceError),
        ("cudaErrorInvalidDevice", DeviceError),
        ("cudaErrorMemoryAllocation", InferenceError),
        ("cudaErrorIllegalAddress", InferenceError),
    ],
)
def test_cuda_error_kinds(name: str, kind: type[Exception]) -> None:
    error = cuda_error(name, "what CUDA says", "cudaMalloc(64 bytes)", InferenceError)
    assert type(error) is kind
    assert f"CUDA cudaMalloc(64 bytes) failed: {name} (what CUDA says)" in str(error)


def test_real_cuda_call_without_a_driver_is_a_device_error(no_driver: None) -> None:
    """The CUDA error path is real here: cuda-bindings' runtime answers every call with
    cudaErrorInsufficientDriver, and the plugin names it and says what to do."""
    with pytest.raises(DeviceError) as info:
        _cuda.DeviceBuffer().ensure(64)
    text = str(info.value)
    assert "CUDA cudaMalloc(64 bytes) failed: cudaErrorInsufficientDriver" in text
    assert "CUDA driver version is insufficient for CUDA runtime version" in text
    assert "install or update the NVIDIA driver" in text
    with pytest.raises(DeviceError, match="cudaGetDeviceCount failed: cudaErrorInsufficientDriver"):
        _cuda.device_count()
    with pytest.raises(DeviceError, match="cudaMallocHost"):
        _cuda.PinnedBuffer().view(16)
    with pytest.raises(DeviceError, match="cudaStreamCreate"):
        _cuda.Stream()
    assert _cuda.driver_version() is None
    assert _cuda.runtime_version().split(".")[0].isdigit()


def test_output_allocator_failure_is_kept_and_raised_after_the_run(no_driver: None) -> None:
    """TensorRT's IOutputAllocator callbacks must not raise: a failed allocation returns 0
    (TensorRT then fails the run) and the CUDA error is raised afterwards."""
    outputs = _Outputs()
    assert outputs.allocate("boxes", 1024) == 0
    outputs.notify("boxes", (0, 4))
    assert outputs.shapes == {"boxes": (0, 4)}
    with pytest.raises(DeviceError, match="cudaMalloc"):
        outputs.check()
    outputs.check()  # reported once
