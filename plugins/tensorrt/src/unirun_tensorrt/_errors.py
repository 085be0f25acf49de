"""TensorRT and CUDA failures to unirun errors, in one place.

* CUDA: every ``cuda.bindings`` call returns ``(cudaError_t, ...)``; :func:`cuda_error` turns a
  failed code into ``DeviceError`` (no driver, no device, device lost) or the caller's error type
  (``InferenceError`` while running), naming the CUDA error.
* The ONNX parser: :func:`parser_error` reports every error the parser recorded, at once, naming
  node and operator: ``UnsupportedModelError`` when the parser says a node is unsupported,
  ``InvalidModelError`` when it cannot read the model, else ``CompileError``.
* The builder: TensorRT reports failures only to its logger; :class:`LogCapture` keeps the
  error lines a build produced, for the ``CompileError`` message.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from unirun.errors import (
    CompileError,
    DeviceError,
    InvalidModelError,
    UnirunError,
    UnsupportedModelError,
)

#: CUDA errors that mean "this device (or any) cannot be used", not "this run failed".
DEVICE_ERRORS = frozenset(
    {
        "cudaErrorInsufficientDriver",
        "cudaErrorNoDevice",
        "cudaErrorInvalidDevice",
        "cudaErrorDevicesUnavailable",
        "cudaErrorSystemDriverMismatch",
        "cudaErrorSystemNotReady",
        "cudaErrorCompatNotSupportedOnDevice",
        "cudaErrorDeviceUninitialized",
        "cudaErrorInitializationError",
        "cudaErrorStubLibrary",
        "cudaErrorUnsupportedPtxVersion",
        "cudaErrorNoKernelImageForDevice",
    }
)
_FIXES = {
    "cudaErrorInsufficientDriver": "install or update the NVIDIA driver (CUDA 13 needs 580.65 or "
    "newer, CUDA 12 needs 525.60 or newer), or install the extra matching the driver "
    "(unirun-tensorrt[cu12] for older drivers)",
    "cudaErrorNoDevice": "no NVIDIA GPU is visible: check nvidia-smi and CUDA_VISIBLE_DEVICES",
    "cudaErrorInvalidDevice": "that GPU index does not exist here; see `unirun backends`",
    "cudaErrorMemoryAllocation": "the GPU is out of memory: lower the batch size or the shapes "
    "bounds, or free other GPU work",
}


def trim(text: str) -> str:
    """One line (TensorRT's log lines carry newlines); the core cuts long messages."""
    return " ".join(str(text).split())


def cuda_error(name: str, description: str, what: str, default: type[UnirunError]) -> UnirunError:
    """The unirun error for CUDA error ``name`` (``"cudaErrorNoDevice"``) raised by ``what``."""
    fix = _FIXES.get(name)
    message = f"CUDA {what} failed: {name} ({description})" + (f"; {fix}" if fix else "")
    return DeviceError(message) if name in DEVICE_ERRORS else default(message)


@dataclass(frozen=True)
class ParserIssue:
    """One error the ONNX parser recorded, as plain values."""

    code: str  #: ``ErrorCode`` member name: ``UNSUPPORTED_NODE``, ``INVALID_GRAPH``…
    description: str
    node: int = -1  #: index in the graph, -1 when not tied to a node
    node_name: str = ""
    op: str = ""

    @classmethod
    def read(cls, error: Any) -> ParserIssue:
        """From a ``trt.ParserError``; tolerant of the accessors a version lacks."""

        def get(attr: str, default: Any) -> Any:
            try:
                value = getattr(error, attr)
                return value() if callable(value) else value
            except Exception:  # older parsers lack node_name()/node_operator()
                return default

        code = get("code", "")
        return cls(
            code=str(getattr(code, "name", code)).rsplit(".", 1)[-1],
            description=str(get("desc", "")),
            node=int(get("node", -1)),
            node_name=str(get("node_name", "")),
            op=str(get("node_operator", "")),
        )


_INVALID = frozenset({"MODEL_DESERIALIZE_FAILED", "INVALID_GRAPH"})


def parser_error(issues: Sequence[ParserIssue], proto: Any = None) -> UnirunError:
    """One error for everything the parser reported; ``proto`` names nodes given by index."""
    nodes = list(proto.graph.node) if proto is not None else []
    described, unsupported = [], []
    for issue in issues:
        name, op = issue.node_name, issue.op
        if 0 <= issue.node < len(nodes):
            name = name or nodes[issue.node].name
            op = op or nodes[issue.node].op_type
        where = f"node {name!r} ({op})" if name or op else "the graph"
        described.append(f"{where}: {trim(issue.description) or issue.code}")
        if issue.code.startswith("UNSUPPORTED"):
            unsupported.append((name, op))
    text = "; ".join(described) or "the parser gave no reason"
    count = f"{len(issues)} errors" if len(issues) > 1 else "an error"
    if unsupported:
        return UnsupportedModelError(
            f"TensorRT's ONNX parser cannot take this model ({count}): {text}. Replace or "
            "remove the nodes, or run the model with backend='onnxruntime'",
            unsupported,
        )
    if any(issue.code in _INVALID for issue in issues):
        return InvalidModelError(f"TensorRT's ONNX parser cannot read the model: {text}")
    return CompileError(f"TensorRT's ONNX parser failed ({count}): {text}")


class LogCapture:
    """Error lines TensorRT's logger receives, kept per thread while :meth:`collect` runs.

    One logger serves every builder and runtime in the process (TensorRT wants one), so the
    lines are routed to the thread that is building."""

    def __init__(self) -> None:
        self._local = threading.local()

    def add(self, line: str) -> None:
        sink: list[str] | None = getattr(self._local, "sink", None)
        if sink is not None:
            sink.append(trim(line))

    @contextmanager
    def collect(self) -> Iterator[list[str]]:
        previous = getattr(self._local, "sink", None)
        lines: list[str] = []
        self._local.sink = lines
        try:
            yield lines
        finally:
            self._local.sink = previous


def build_failure(lines: Sequence[str], what: str) -> CompileError:
    detail = "; ".join(lines[-5:]) if lines else "TensorRT logged no error"
    return CompileError(f"TensorRT failed to {what}: {trim(detail)}")
