"""OpenVINO ports ↔ the ONNX graph's inputs and outputs.

OpenVINO keeps the graph's input and output *order* but not always its tensor *names*: when a
no-op such as an inference-mode Dropout is removed, a graph output can lose its name to the
tensor it merged with (ONNX outputs ``r`` and ``y`` come back as two ports both called ``y``).
So ports are matched by position, and unirun reports the ONNX names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from unirun.errors import UnsupportedModelError
from unirun.options import ShapeRange
from unirun.tensor import Dim, TensorSpec

from ._dtypes import FROM_OV


def check_count(ports: Sequence[Any], specs: Sequence[TensorSpec], what: str) -> str | None:
    """A sentence saying why ``ports`` cannot stand for ``specs``, or None."""
    if len(ports) == len(specs):
        return None
    names = ", ".join(s.name for s in specs)
    return (
        f"OpenVINO's model has {len(ports)} {what} where the ONNX graph declares {len(specs)} "
        f"({names})"
    )


_REFUSED = {
    "string": "OpenVINO 2026.4 corrupts the heap with string tensors: the process aborts at exit",
    "bf16": "OpenVINO's Python API hands bf16 tensors to numpy as float16, garbling them",
}


def to_specs(ports: Sequence[Any], specs: Sequence[TensorSpec]) -> list[TensorSpec]:
    """Specs named as in ONNX, with OpenVINO's element types and dimensions (fixed sizes as
    ints; dynamic ones keep the ONNX symbol, or ``"?"``)."""
    out = []
    for port, spec in zip(ports, specs, strict=True):
        kind = port.get_element_type().get_type_name()
        dtype = FROM_OV.get(kind)
        if dtype is None:
            why = _REFUSED.get(kind, "unirun has no mapping for it")
            raise UnsupportedModelError(
                f"{spec.name!r} has element type {kind}, which unirun's OpenVINO backend does not "
                f"exchange ({why}); run this model with backend='onnxruntime'"
            )
        out.append(TensorSpec(spec.name, dtype, _dims(port.get_partial_shape(), spec.shape)))
    return out


def _dims(shape: Any, declared: tuple[Dim, ...] | None) -> tuple[Dim, ...] | None:
    if shape.rank.is_dynamic:
        return None
    dims: list[Dim] = []
    for axis, dim in enumerate(shape):
        if dim.is_static:
            dims.append(dim.get_length())
        elif declared is not None and len(declared) == len(shape):
            symbol = declared[axis]
            dims.append(symbol if isinstance(symbol, str) else "?")
        else:
            dims.append("?")
    return tuple(dims)


def bounded_shapes(
    ov: Any, ports: Sequence[Any], specs: Sequence[TensorSpec], shapes: Mapping[str, ShapeRange]
) -> dict[Any, Any]:
    """``model.reshape`` argument for the user's ``shapes``: a dimension whose min equals its
    max becomes static, the others ``Dimension(min, max)``; ``opt`` has no OpenVINO meaning."""
    by_name = {spec.name: port for port, spec in zip(ports, specs, strict=True)}
    reshape: dict[Any, Any] = {}
    for name, bounds in shapes.items():
        dims = [
            lo if lo == hi else ov.Dimension(lo, hi)
            for lo, hi in zip(bounds.min, bounds.max, strict=True)
        ]
        reshape[by_name[name]] = ov.PartialShape(dims)
    return reshape
