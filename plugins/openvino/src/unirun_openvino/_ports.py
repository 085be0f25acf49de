"""OpenVINO ports ↔ the ONNX graph's inputs and outputs, matched by the names OpenVINO keeps,
never by position (a manifest listing the outputs in another order must not swap answers).

OpenVINO does not keep the graph's signature exactly, so unirun always reports the ONNX names:

* *Outputs* do not always keep their tensor names: when a no-op such as an inference-mode Dropout
  is removed, a graph output can lose its name to the tensor it merged with (ONNX outputs ``r``
  and ``y`` come back as two ports both called ``y``). The ONNX frontend names each output's
  Result node ``<output>/sink_port_0`` whatever happens to the tensor, so that name decides,
  then a tensor name no other port has.
* *Inputs* keep their names, except that an input feeding a removed no-op takes the name of the
  tensor it merged with, and an input OpenVINO can fold away (an empty, static ``axes``, the
  ratio of an inference-mode Dropout) has no port at all. Inputs are matched by name; a port
  whose names are no ONNX input's is matched to the one unmatched input of the same element
  type and rank. An input without a port is still declared (the caller passes it) but is not
  handed to OpenVINO.
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
}
_RESULT_SUFFIX = "/sink_port_0"


@dataclass(frozen=True)
class Binding:
    """The ONNX signature in OpenVINO's terms."""

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    #: (OpenVINO input port index, ONNX input name) for every input OpenVINO kept
    feeds: tuple[tuple[int, str], ...]
    #: the OpenVINO output port index of each ONNX output, in ``outputs`` order
    results: tuple[int, ...]


def bind(
    model: Any,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    error: type[UnirunError],
) -> Binding:
    """Match ``model``'s ports (an ``ov.Model`` or a compiled model) to the ONNX signature;
    ``error`` is raised, with the reason, when they cannot be matched."""
    results = _output_ports(model.outputs, outputs, error)
    ports = _input_ports(model.inputs, inputs, error)
    pairs = zip(ports, inputs, strict=True)
    specs = [spec if i is None else _spec(model.inputs[i], spec) for i, spec in pairs]
    return Binding(
        specs,
        [_spec(model.outputs[i], spec) for i, spec in zip(results, outputs, strict=True)],
        tuple((i, spec.name) for i, spec in zip(ports, inputs, strict=True) if i is not None),
        tuple(results),
    )


def _output_ports(
    ports: Sequence[Any], specs: Sequence[TensorSpec], error: type[UnirunError]
) -> list[int]:
    by_result = {_result_name(port): i for i, port in enumerate(ports)}
    by_name: dict[str, list[int]] = {}
    for position, port in enumerate(ports):
        for name in port.get_names():
            by_name.setdefault(name, []).append(position)
    found: list[int] = []
    for spec in specs:
        index = by_result.get(spec.name + _RESULT_SUFFIX)
        if index is None and len(by_name.get(spec.name, ())) == 1:
            index = by_name[spec.name][0]
        if index is None or index in found:
            names = "; ".join(", ".join(sorted(p.get_names())) or "?" for p in ports)
            raise error(
                f"OpenVINO's model has no output that is ONNX output {spec.name!r} (its "
                f"outputs are named: {names}); unirun cannot tell which is which"
            )
        found.append(index)
    return found


def _result_name(port: Any) -> str:
    try:
        return str(port.get_node().get_friendly_name())
    except (AttributeError, RuntimeError):
        return ""


def _input_ports(
    ports: Sequence[Any], specs: Sequence[TensorSpec], error: type[UnirunError]
) -> list[int | None]:
    by_name: dict[str, int] = {}
    for index, port in enumerate(ports):
        for name in port.get_names():
            by_name.setdefault(name, index)
    found = [by_name.get(spec.name) for spec in specs]
    for index, port in enumerate(ports):
        if index in found:
            continue
        # A port renamed after the tensor it merged with: the one unmatched input like it.
        alike = [i for i, spec in enumerate(specs) if found[i] is None and _same_kind(port, spec)]
        if len(alike) != 1:
            listed = ", ".join(f"{s.name} ({s.dtype})" for s in specs)
            raise error(
                f"OpenVINO's model has an input named {', '.join(sorted(port.get_names()))!r} "
                f"that is none of the ONNX graph's inputs ({listed}), and "
                f"{'several' if alike else 'none'} of them have its type and rank: unirun "
                "cannot tell which it is"
            )
        found[alike[0]] = index
    return found


def _same_kind(port: Any, spec: TensorSpec) -> bool:
    dtype = FROM_OV.get(port.get_element_type().get_type_name())
    shape = port.get_partial_shape()
    rank = None if shape.rank.is_dynamic else shape.rank.get_length()
    return dtype == spec.dtype and (rank is None or spec.shape is None or rank == len(spec.shape))


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
