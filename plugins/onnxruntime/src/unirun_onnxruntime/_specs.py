"""The specs of a session's inputs and outputs, with sequences, maps and optionals, and what
ONNX Runtime's Python API cannot carry of them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from unirun.dtypes import DType
from unirun.errors import UnsupportedModelError
from unirun.tensor import Dim, TensorSpec
from unirun.values import MapType, OptionalType, TensorType, ValueType

from ._dtypes import FROM_ORT, NARROW, value_type

if TYPE_CHECKING:
    from unirun.source import OnnxModel

__all__ = ["check_kept", "check_values", "spec_of", "specs"]


def spec_of(arg: Any) -> TensorSpec:
    dtype = FROM_ORT.get(arg.type)
    shape = arg.shape
    dims: tuple[Dim, ...] | None = None
    if shape is not None:
        dims = tuple(d if isinstance(d, int) else (d or "?") for d in shape)
    if dtype is not None:
        return TensorSpec(arg.name, dtype, dims)
    kind = value_type(arg.type)
    if kind is None:
        raise UnsupportedModelError(
            f"ONNX Runtime reports type {arg.type} for {arg.name!r}, which unirun does not know"
        )
    if isinstance(kind, OptionalType) and isinstance(kind.element, TensorType):
        kind = OptionalType(TensorType(kind.element.dtype, dims))  # ORT gives its shape
    return TensorSpec.of(arg.name, kind)


def specs(args: Sequence[Any], graph: Sequence[TensorSpec]) -> list[TensorSpec]:
    """The session's specs; for a sequence, map or optional, the graph's own type where it
    is the same but for the shapes inside, which ONNX Runtime's type strings leave out."""
    known = {spec.name: spec for spec in graph if spec.kind is not None}
    specs = []
    for arg in args:
        spec = spec_of(arg)
        richer = known.get(spec.name)
        if (
            spec.kind is not None
            and richer is not None
            and richer.kind is not None
            and _unshaped(richer.kind) == _unshaped(spec.kind)
        ):
            spec = richer
        specs.append(spec)
    return specs


def _unshaped(kind: ValueType) -> ValueType:
    if isinstance(kind, TensorType):
        return TensorType(kind.dtype)
    if isinstance(kind, MapType):
        return MapType(kind.key, _unshaped(kind.value))
    return type(kind)(_unshaped(kind.element))


def check_values(model: OnnxModel) -> None:
    """Refuse what onnxruntime's Python API cannot carry, before building anything."""
    specs = (*model.inputs, *model.outputs)
    valued = [s for s in specs if s.kind is not None]
    if not valued:
        return
    narrow = [s for s in valued if s.kind is not None and s.kind.dtypes & NARROW]
    if narrow:
        raise UnsupportedModelError(
            f"ONNX Runtime's Python API cannot carry {'; '.join(map(str, narrow))}: sequences "
            "and maps of types numpy lacks; make them tensors in the model"
        )
    mixed = [s for s in specs if s.kind is None and s.dtype in NARROW]
    if mixed:
        raise UnsupportedModelError(
            f"ONNX Runtime's Python API cannot carry the {'; '.join(map(str, mixed))} inputs/"
            "outputs (types numpy lacks, which travel as raw bits) in the same call as sequence, "
            f"map or optional values ({'; '.join(map(str, valued))}); split the model"
        )
    for spec in model.inputs:
        for kind in _maps(spec.kind):
            value = kind.value
            if kind.key not in (DType.INT64, DType.STRING) or not (
                isinstance(value, TensorType) and value.dtype is DType.FLOAT32
            ):
                raise UnsupportedModelError(
                    f"input {spec.name!r} is {spec.kind}; ONNX Runtime's Python API feeds maps "
                    "from int64 or string keys to float32 values only"
                )


def check_kept(
    model: OnnxModel, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]
) -> None:
    """The fp16 converter keeps tensor inputs/outputs float32 but not the tensors inside a
    sequence or map: refuse a build whose values would change type under the caller."""
    built = {s.name: s.kind for s in (*inputs, *outputs) if s.kind is not None}
    changed = [
        f"{s.name}: {s.kind} would become {built[s.name]}"
        for s in (*model.inputs, *model.outputs)
        if s.kind is not None and s.name in built and _unshaped(s.kind) != _unshaped(built[s.name])
    ]
    if changed:
        raise UnsupportedModelError(
            f"precision='fp16' would change the type of {'; '.join(changed)} (ONNX Runtime's "
            "fp16 conversion keeps only tensor inputs/outputs in float32); build this model in "
            "fp32, or pass options={'fp16_io': True} to accept float16 values"
        )


def _maps(kind: ValueType | None) -> list[MapType]:
    if kind is None or isinstance(kind, TensorType):
        return []
    if isinstance(kind, MapType):
        return [kind, *_maps(kind.value)]
    return _maps(kind.element)
