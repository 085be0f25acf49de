"""OpenVINO ports ↔ the ONNX graph's inputs and outputs.

OpenVINO does not keep the graph's signature exactly, so ports are matched with care and
unirun always reports the ONNX names:

* *Outputs* keep their order but not always their names: when a no-op such as an inference-mode
  Dropout is removed, a graph output can lose its name to the tensor it merged with (ONNX outputs
  ``r`` and ``y`` come back as two ports both called ``y``). Outputs are matched by position.
* *Inputs* keep their names, but an input OpenVINO can fold away (an empty, static ``axes``) has
  no port at all. Inputs are matched by name, by position when names do not decide it; an input
  without a port is still declared (the caller must pass it) but not handed to OpenVINO.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from unirun.errors import UnirunError, UnsupportedModelError
from unirun.options import ShapeRange
from unirun.tensor import Dim, TensorSpec

from ._dtypes import FROM_OV

_REFUSED = {
    "string": "OpenVINO 2026.4 corrupts the heap with string tensors: the process aborts at exit",
    "bf16": "OpenVINO's Python API hands bf16 tensors to numpy as float16, garbling them",
}


@dataclass(frozen=True)
class Binding:
    """The ONNX signature in OpenVINO's terms."""

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    #: (OpenVINO input port index, ONNX input name) for every input OpenVINO kept
    feeds: tuple[tuple[int, str], ...]


def bind(
    model: Any,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    error: type[UnirunError],
) -> Binding:
    """Match ``model``'s ports (an ``ov.Model`` or a compiled model) to the ONNX signature;
    ``error`` is raised, with the reason, when they cannot be matched."""
    if len(model.outputs) != len(outputs):
        raise error(
            f"OpenVINO's model has {len(model.outputs)} outputs where the ONNX graph declares "
            f"{len(outputs)} ({', '.join(s.name for s in outputs)}); unirun cannot tell which "
            "is which"
        )
    ports = _input_ports(model.inputs, inputs, error)
    pairs = zip(ports, inputs, strict=True)
    specs = [spec if i is None else _spec(model.inputs[i], spec) for i, spec in pairs]
    return Binding(
        specs,
        [_spec(port, spec) for port, spec in zip(model.outputs, outputs, strict=True)],
        tuple((i, spec.name) for i, spec in zip(ports, inputs, strict=True) if i is not None),
    )


def _input_ports(
    ports: Sequence[Any], specs: Sequence[TensorSpec], error: type[UnirunError]
) -> list[int | None]:
    by_name: dict[str, int] = {}
    for index, port in enumerate(ports):
        for name in port.get_names():
            by_name.setdefault(name, index)
    found = [by_name.get(spec.name) for spec in specs]
    matched = [i for i in found if i is not None]
    if sorted(matched) == list(range(len(ports))):  # every port named, each once
        return found
    if len(ports) == len(specs):
        return list(range(len(specs)))
    raise error(
        f"OpenVINO's model has {len(ports)} inputs where the ONNX graph declares {len(specs)} "
        f"({', '.join(s.name for s in specs)}), and their names do not say which is which"
    )


def _spec(port: Any, spec: TensorSpec) -> TensorSpec:
    """Named as in ONNX, with OpenVINO's element type and dimensions (fixed sizes as ints;
    dynamic ones keep the ONNX symbol, or ``"?"``)."""
    kind = port.get_element_type().get_type_name()
    dtype = FROM_OV.get(kind)
    if dtype is None:
        why = _REFUSED.get(kind, "unirun has no mapping for it")
        raise UnsupportedModelError(
            f"{spec.name!r} has element type {kind}, which unirun's OpenVINO backend does not "
            f"exchange ({why}); run this model with backend='onnxruntime'"
        )
    return TensorSpec(spec.name, dtype, _dims(port.get_partial_shape(), spec.shape))


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
    ov: Any, model: Any, binding: Binding, shapes: Mapping[str, ShapeRange]
) -> dict[Any, Any]:
    """``model.reshape`` argument for the user's ``shapes``: a dimension whose min equals its
    max becomes static, the others ``Dimension(min, max)``; ``opt`` has no OpenVINO meaning."""
    ports = {name: model.inputs[index] for index, name in binding.feeds}
    reshape: dict[Any, Any] = {}
    for name, bounds in shapes.items():
        if name not in ports:
            continue  # an input OpenVINO folded away
        dims = [
            lo if lo == hi else ov.Dimension(lo, hi)
            for lo, hi in zip(bounds.min, bounds.max, strict=True)
        ]
        reshape[ports[name]] = ov.PartialShape(dims)
    return reshape
