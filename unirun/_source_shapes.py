"""Declared input ``shapes`` against an ONNX graph: checked against the model's inputs, written
into a copy of the graph, and described as the user wrote them. Re-exported by
:mod:`unirun.source`, where plugins import these from."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

from .errors import CompileError, InvalidModelError, OptionsError, UnsupportedModelError
from .options import ShapeRange
from .tensor import TensorSpec

if TYPE_CHECKING:
    import onnx

__all__ = ["build_with_fixed_shapes", "check_shapes", "describe_shapes", "fix_input_shapes"]

_T = TypeVar("_T")


def check_shapes(inputs: list[TensorSpec], shapes: Mapping[str, ShapeRange]) -> None:
    """Reject ``shapes`` that name unknown inputs or contradict the model's rank or fixed dims."""
    by_name = {spec.name: spec for spec in inputs}
    for name, bounds in shapes.items():
        spec = by_name.get(name)
        if spec is None:
            raise OptionsError(
                f"shapes names input {name!r}, which the model does not have; inputs: "
                f"{', '.join(by_name) or '(none)'}"
            )
        if spec.kind is not None:
            raise OptionsError(
                f"shapes names input {name!r}, which is {spec.kind} (not a tensor); shapes= "
                "declares the dimensions of tensor inputs only"
            )
        if spec.shape is None:
            continue
        if bounds.rank != len(spec.shape):
            raise OptionsError(
                f"shapes for {name!r} have rank {bounds.rank}, but the model declares {spec}"
            )
        for axis, dim in enumerate(spec.shape):
            if isinstance(dim, int) and not bounds.min[axis] == dim == bounds.max[axis]:
                raise OptionsError(
                    f"shapes for {name!r} give dimension {axis} as {bounds.dim(axis)}, but the "
                    f"model fixes it to {dim} ({spec})"
                )


def fix_input_shapes(proto: onnx.ModelProto, shapes: Mapping[str, ShapeRange]) -> onnx.ModelProto:
    """A copy of ``proto`` whose inputs have the fixed shapes in ``shapes`` written in."""
    import onnx

    fixed = {name: r.min for name, r in shapes.items() if r.is_fixed}
    if not fixed:
        return proto
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    for value in out.graph.input:
        dims = fixed.get(value.name)
        if dims is None:
            continue
        shape = value.type.tensor_type.shape
        shape.ClearField("dim")
        for size in dims:
            shape.dim.add().dim_value = size
    return out


def build_with_fixed_shapes(
    proto: onnx.ModelProto,
    shapes: Mapping[str, ShapeRange],
    build: Callable[[onnx.ModelProto], _T],
    *,
    engine: str,
    logger: logging.Logger,
) -> _T:
    """``build(proto)`` with the fixed shapes in ``shapes`` written into the graph's inputs, and
    ``build(proto)`` as it is if the engine refuses that graph (its shape inference can fail
    inside ``If`` branches that never run with those sizes). Declaring shapes never breaks a
    model the engine runs without them: the core still checks every feed against ``shapes``.
    The fallback is logged at WARNING, naming the shapes and the engine's reason; if the graph
    as it is fails too, that failure (which the shapes did not cause) is raised."""
    fixed = fix_input_shapes(proto, shapes)
    if fixed is proto:
        return build(proto)
    try:
        return build(fixed)
    except (InvalidModelError, UnsupportedModelError, CompileError) as exc:
        result = build(proto)
        logger.warning(
            "%s cannot build the model with the declared fixed input shapes %s written into "
            "its graph (%s); built it with the graph's own dimensions instead: unirun checks "
            "that every input has the declared shape",
            engine,
            describe_shapes({k: v for k, v in shapes.items() if v.is_fixed}),
            exc,
        )
        return result


def describe_shapes(shapes: Mapping[str, ShapeRange]) -> str:
    """``input=(1, 512), state=(2, 1, 128)``: the user's ``shapes`` as they wrote them."""
    return ", ".join(f"{name}={r.describe()}" for name, r in shapes.items())
