"""OpenVINO exceptions to unirun errors, with OpenVINO's C++ throw sites stripped.

OpenVINO raises plain ``RuntimeError``s whose text stacks one "Exception from src/...cpp:105:"
line per C++ frame; the information is in the last lines and, for ONNX conversion failures, in a
summary naming the operators. This module keeps only that.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from unirun.errors import (
    CompileError,
    DeviceError,
    InferenceError,
    InputError,
    InvalidModelError,
    OptionsError,
    UnirunError,
    UnsupportedModelError,
)
from unirun.errors import out_of_space as disk_full
from unirun.source import all_nodes

_SITE = re.compile(r"(?:Exception from|Check '.*?' failed at) [\w./\\-]+:\d+:[ \t]*")
# an OpenVINO-internal node ("opset1::Convolution Convolution_4 (...)"); the ONNX node is named
_INTERNAL_NODE = re.compile(r"While validating node '.*?' with friendly_name '[^']*':\s*")
_NOISE = (
    "To facilitate the conversion",
    "FrontEnd API failed with",
    "Summary:",
    "-- No conversion rule found",
    "-- Conversion is failed for",
)
_NO_RULE = re.compile(r"No conversion rule found for operations?: ([^\n]+)")
_FAILED_OP = re.compile(r"^-- ([\w.]+?)-(\d+) with a message:$", re.MULTILINE)
_ONNX_NODE = re.compile(r"While validating ONNX node '<Node\((\w+)\): ([^>]*)>':?\s*")
_OP_ITEM = re.compile(r"^(?:(?P<domain>[\w.]+)\.)?(?P<op>\w+?)(?:-(?P<version>\d+))?$")
# OpenVINO's status-code prefixes ("NotFound: Unsupported property FOO by CPU plugin.")
_STATUS = re.compile(r"^(?:NotFound|ParameterMismatch|NotImplemented|GeneralFailure): ")
_DANGLING = re.compile(r"(\S+) node not found in graph cache")
_UNSUPPORTED = re.compile(r"not supported|unsupported|not implemented", re.IGNORECASE)
_NO_DEVICE = re.compile(
    r"Cannot load library|is not registered in the OpenVINO Runtime|"
    r"compiler loading failed|Device with \"[^\"]*\" name is not registered"
)
_BAD_PROPERTY = re.compile(r"Unsupported property|Wrong value for property|Unsupported config")
_BAD_SHAPE = re.compile(
    r"Can not clone with new dims|are incompatible|Can't set the input tensor|"
    r"ParameterMismatch|Failed to set tensor"
)
_OUT_OF_BOUNDS = re.compile(
    r"input tensor with index: (\d+), because the model input \(shape=(\[[^\]]*\])\) and "
    r"the tensor \(shape=\(([\d.]*)\)\) are incompatible"
)
# OpenVINO's wording when a file cannot be written (a full disk among the causes)
_WRITE_FAILED = re.compile(r"basic_ios|iostream|write|No space|File too large", re.IGNORECASE)


def message(exc: BaseException | str) -> str:
    """The engine's message without throw sites, documentation links or blank lines."""
    text = _INTERNAL_NODE.sub("", _SITE.sub("", str(exc)))
    lines = [line.strip() for line in text.splitlines()]
    kept = " ".join(_STATUS.sub("", line) for line in lines if line and not line.startswith(_NOISE))
    return kept  # the core cuts long messages


def out_of_space(exc: BaseException, directory: Path, size: int) -> UnirunError | None:
    """A ``CompileError`` saying the disk is full, if ``exc`` (raised while OpenVINO wrote into
    ``directory``) came from that: OpenVINO only says "basic_ios::clear: iostream error" (see
    :func:`unirun.errors.out_of_space`)."""
    if not _WRITE_FAILED.search(str(exc)):
        return None
    return disk_full(directory, size, "write OpenVINO's compiled model")


def map_error(
    exc: BaseException, stage: str, proto: Any = None, inputs: Mapping[int, str] | None = None
) -> UnirunError:
    """The unirun error for an OpenVINO exception raised while ``stage``: ``read`` (ONNX →
    OpenVINO model), ``reshape``, ``compile``, ``import`` or ``run``. ``proto`` (the ONNX
    model) lets conversion failures name the nodes; ``inputs`` (port → name) the inputs."""
    raw = str(exc)
    text = message(raw)
    if stage == "run":
        bounds = _OUT_OF_BOUNDS.search(raw)
        if bounds:
            index = int(bounds.group(1))
            name = (inputs or {}).get(index, f"#{index}")
            got = bounds.group(3).replace(".", ", ")
            return InputError(
                f"OpenVINO refused input {name!r} of shape ({got}): the model was compiled for "
                f"shapes {bounds.group(2)}",
                name,
            )
        if _BAD_SHAPE.search(raw):
            return InputError(f"OpenVINO refused the input: {text}")
        return InferenceError(f"OpenVINO failed while running: {text}")
    if stage == "reshape":
        return OptionsError(f"OpenVINO cannot give the model these input shapes: {text}")
    if stage == "read":
        return _read_error(raw, text, proto)
    if _NO_DEVICE.search(raw):
        return DeviceError(f"OpenVINO cannot use the device: {text}")
    if _BAD_PROPERTY.search(raw):
        return OptionsError(f"OpenVINO rejected a property: {text}")
    what = "import the compiled model" if stage == "import" else "compile the model"
    return CompileError(f"OpenVINO failed to {what}: {text}")


def _read_error(raw: str, text: str, proto: Any) -> UnirunError:
    unknown = _NO_RULE.search(raw)
    if unknown:
        ops: list[tuple[str, str]] = []
        described = []
        for item in unknown.group(1).split(","):
            match = _OP_ITEM.match(item.strip())
            if match is None:
                continue
            op, domain = match.group("op"), match.group("domain") or ""
            nodes = _nodes(proto, op, domain) or [""]
            ops.extend((node, op) for node in nodes)
            where = ", ".join(repr(n) for n in nodes if n)
            described.append(
                f"{domain + '.' if domain else ''}{op}"
                + (f" (opset {match.group('version')})" if match.group("version") else "")
                + (f" at node {where}" if where else "")
            )
        return UnsupportedModelError(
            f"OpenVINO has no conversion for operator {'; '.join(described)}; remove or replace "
            "the node, or register an OpenVINO frontend extension for it",
            ops,
        )
    failed = _FAILED_OP.search(raw)
    if failed:
        op = failed.group(1)
        detail = message(raw[failed.end() :].split("\nSummary:")[0])
        node_match = _ONNX_NODE.search(detail)
        node = node_match.group(2) if node_match else next(iter(_nodes(proto, op, "")), "")
        detail = _ONNX_NODE.sub("", detail).strip()
        where = f"node {node!r} ({op})" if node else f"operator {op}"
        if _UNSUPPORTED.search(detail):
            return UnsupportedModelError(f"OpenVINO cannot convert {where}: {detail}", [(node, op)])
        return CompileError(f"OpenVINO cannot convert {where}: {detail}")
    dangling = _DANGLING.search(raw)
    if dangling:
        name = dangling.group(1)
        return InvalidModelError(
            f"the model is not a valid ONNX graph: tensor {name!r} is consumed but no node or "
            "graph input produces it"
        )
    if "Unable to read the model" in raw:
        return InvalidModelError(f"OpenVINO cannot read the model: {text}")
    return CompileError(f"OpenVINO failed to read the model: {text}")


def _nodes(proto: Any, op: str, domain: str) -> list[str]:
    if proto is None:
        return []
    found = [
        node.name
        for node in all_nodes(proto.graph)
        if node.op_type == op and ("" if node.domain == "ai.onnx" else node.domain) == domain
    ]
    return found[:5]
