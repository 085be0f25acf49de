"""The ONNX ↔ Core ML input/output map, kept in the .mlpackage's user metadata."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

METADATA_KEY = "unirun.coreml.io"


@dataclass(frozen=True)
class TensorMapping:
    """One model input or output: its ONNX name and type, and what Core ML calls it.

    Core ML has no rank-0 inputs: an ONNX scalar input (``shape == ()``) is fed as shape (1,).
    """

    onnx_name: str
    coreml_name: str
    onnx_dtype: str  # numpy dtype name, e.g. "int64"
    coreml_dtype: str  # what Core ML feeds or returns, e.g. "int32"
    shape: tuple[int | str, ...] | None  # as declared in ONNX (str: symbolic); None: undeclared


def dumps(inputs: tuple[TensorMapping, ...], outputs: tuple[TensorMapping, ...]) -> str:
    return json.dumps(
        {"inputs": [asdict(m) for m in inputs], "outputs": [asdict(m) for m in outputs]}
    )


def loads(text: str) -> tuple[tuple[TensorMapping, ...], tuple[TensorMapping, ...]]:
    data: dict[str, Any] = json.loads(text)

    def mapping(item: dict[str, Any]) -> TensorMapping:
        return TensorMapping(
            onnx_name=str(item["onnx_name"]),
            coreml_name=str(item["coreml_name"]),
            onnx_dtype=str(item["onnx_dtype"]),
            coreml_dtype=str(item["coreml_dtype"]),
            shape=None if item["shape"] is None else tuple(item["shape"]),
        )

    return (tuple(mapping(i) for i in data["inputs"]), tuple(mapping(o) for o in data["outputs"]))
