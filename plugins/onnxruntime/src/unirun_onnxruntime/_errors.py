"""ONNX Runtime exceptions to unirun errors, with ONNX Runtime's status prefix and C++ source
locations stripped."""

from __future__ import annotations

import re
from pathlib import Path

from unirun.errors import (
    CompileError,
    DeviceError,
    InferenceError,
    InvalidModelError,
    UnirunError,
    UnsupportedModelError,
)
from unirun.errors import out_of_space as disk_full

_PREFIX = re.compile(r"^\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*")
_NO_KERNEL = re.compile(
    r"Could not find an implementation for (\w+)\((\d+)\) node with name '([^']*)'"
)
_UNKNOWN_OP = re.compile(r"No Op registered for (\w+) with domain_version of (\d+)")
_IN_NODE = re.compile(r'In Node, \("([^"]*)", (\w+),')
_NOT_REGISTERED = re.compile(r"([\w.]*):(\w+)\(-?\d+\) is not a registered function/op")
_NEW_OPSET = re.compile(
    r"Opset (\d+) is under development|Opset (\d+) is not supported|"
    r"guarantees\* support for models stamped with official released onnx "
    r"opset versions\. Opset (\d+)"
)
# "/onnxruntime_src/.../rnn.h:48 onnxruntime::RNN<T>::RNN(const ...&) [with T = float] Message",
# anywhere in a message: the C++ file, line and function signature say nothing to a user.
_SOURCE_LOCATION = re.compile(
    r"(?:/?[\w.+-]+/)+[\w.+-]+\.(?:h|hpp|cc|cpp|cu|c):\d+\s+"
    r"(?:[\w:<>,*&~ ]*?\((?:[^()]|\(\))*\)(?:::<lambda\(\)>)?(?:\s+const)?"
    r"(?:\s+\[with [^\]]*\])?\s+)?"
)
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")
# ONNX Runtime's wording when writing the optimized model fails (a full disk among the causes)
_WRITE_FAILED = re.compile(r"serializ|ofstream|write|No space|File too large", re.IGNORECASE)


def clean(text: str) -> str:
    """One line without colour codes or C++ source locations."""
    return " ".join(_SOURCE_LOCATION.sub("", _COLOUR.sub("", text)).split())


def message(exc: BaseException) -> str:
    text = clean(_PREFIX.sub("", str(exc)).strip())
    return text  # the core cuts long messages


def out_of_space(exc: BaseException, directory: Path, size: int) -> UnirunError | None:
    """A ``CompileError`` saying the disk is full, if ``exc`` (raised while ONNX Runtime wrote
    the optimized model into ``directory``) came from that: ONNX Runtime only says "Protobuf
    serialization failed" (see :func:`unirun.errors.out_of_space`)."""
    if not _WRITE_FAILED.search(str(exc)):
        return None
    return disk_full(directory, size, "write ONNX Runtime's compiled model")


def map_error(exc: BaseException, stage: str) -> UnirunError:
    """The unirun error for an ONNX Runtime exception raised while ``stage`` (compile/load/run)."""
    kind = type(exc).__name__
    text = message(exc)
    if stage == "run":
        return InferenceError(f"ONNX Runtime failed while running: {text}")
    if kind in ("InvalidProtobuf", "NoModel", "NoSuchFile", "ModelLoadCanceled"):
        return InvalidModelError(f"ONNX Runtime cannot read the model: {text}")
    match = _NO_KERNEL.search(text)
    if kind == "NotImplemented" or match:
        ops = [(match.group(3), match.group(1))] if match else []
        what = (
            f" {match.group(1)} (opset {match.group(2)}, node {match.group(3)!r})" if match else ""
        )
        return UnsupportedModelError(
            f"ONNX Runtime has no kernel for{what or ' an operator in this model'}: {text}", ops
        )
    unknown = _UNKNOWN_OP.search(text)
    if unknown:
        node = _IN_NODE.search(text)
        ops = [(node.group(1) if node else "", unknown.group(1))]
        return UnsupportedModelError(
            f"ONNX Runtime does not know operator {unknown.group(1)} at opset "
            f"{unknown.group(2)} (node {ops[0][0]!r})",
            ops,
        )
    custom = _NOT_REGISTERED.search(text)
    if custom:
        domain, op = custom.group(1), custom.group(2)
        return UnsupportedModelError(
            f"ONNX Runtime has no operator {op} in domain {domain or 'ai.onnx'!r}; register a "
            "custom-op library through the session config or remove the node",
            [("", op)],
        )
    opset = _NEW_OPSET.search(text)
    if opset:
        version = next(g for g in opset.groups() if g)
        return UnsupportedModelError(
            f"the model uses opset {version}, newer than onnxruntime supports; upgrade "
            f"onnxruntime or export the model with an older opset ({text})"
        )
    if kind == "InvalidGraph" or text.startswith(("Invalid model", "This is an invalid model")):
        return InvalidModelError(f"the model is not a valid ONNX graph: {text}")
    if kind == "EPFail" or "fallback to CPU EP has been explicitly disabled" in text:
        return DeviceError(f"ONNX Runtime could not place the model on the device: {text}")
    return CompileError(
        f"ONNX Runtime failed to {'load' if stage == 'load' else 'build'} the model: {text}"
    )
