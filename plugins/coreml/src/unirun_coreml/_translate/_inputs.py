"""Graph inputs → MIL placeholders and Core ML input types (fixed, ranged or enumerated)."""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from coremltools.converters.mil.mil import get_new_symbol, types
from onnx import helper

from .._errors import InputShapeError

ShapeSpec = Any  # tuple[int, ...] | (min, opt, max) | list of shapes: see parse_shape_spec

_MIL_DTYPES = {
    np.dtype(np.float32): types.fp32,
    np.dtype(np.float16): types.fp16,
    np.dtype(np.int32): types.int32,
    np.dtype(np.bool_): types.bool,
}


def mil_dtype_for(onnx_dtype: np.dtype[Any]) -> np.dtype[Any]:
    """The Core ML dtype that stands in for an ONNX element type."""
    if onnx_dtype.kind == "b":
        return np.dtype(np.bool_)
    if onnx_dtype.kind in "iu":
        return np.dtype(np.int32)
    if onnx_dtype == np.float16:
        return np.dtype(np.float16)
    if onnx_dtype.kind == "f" or onnx_dtype.name == "bfloat16":
        return np.dtype(np.float32)
    raise InputShapeError(f"Core ML has no tensor type for ONNX element type {onnx_dtype}")


def mil_type(dtype: np.dtype[Any]) -> Any:
    return _MIL_DTYPES[np.dtype(dtype)]


_IDENT = re.compile(r"[^A-Za-z0-9_]")


def safe_name(name: str, taken: set[str]) -> str:
    """A MIL-safe, unique identifier for an ONNX tensor name."""
    base = _IDENT.sub("_", name) or "tensor"
    if base[0].isdigit() or keyword.iskeyword(base) or base in ("main", "input", "output"):
        base = "t_" + base
    candidate, n = base, 1
    while candidate in taken:
        candidate, n = f"{base}_{n}", n + 1
    taken.add(candidate)
    return candidate


@dataclass(frozen=True)
class InputPlan:
    onnx_name: str
    mil_name: str
    onnx_dtype: np.dtype[Any]
    mil_dtype: np.dtype[Any]
    symbolic_shape: tuple[Any, ...]  # ints and MIL symbols
    ranges: tuple[tuple[int, int, int], ...] | None  # (min, default, max) per dim
    enumerated: tuple[tuple[int, ...], ...] | None
    onnx_shape: tuple[int | str, ...]


def _onnx_dims(value_info: onnx.ValueInfoProto) -> list[int | str | None] | None:
    if not value_info.type.tensor_type.HasField("shape"):
        return None
    dims: list[int | str | None] = []
    for d in value_info.type.tensor_type.shape.dim:
        if d.HasField("dim_value") and d.dim_value >= 0:  # some exporters write -1: dynamic
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return dims


def _as_shape(value: Any, name: str) -> tuple[int, ...] | None:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence | np.ndarray):
        return None
    items = list(value)
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in items):
        return None
    shape = tuple(int(v) for v in items)
    if any(d < 1 for d in shape):
        raise InputShapeError(f"shapes[{name!r}]: dimensions must be >= 1, got {shape}")
    return shape


def parse_shape_spec(
    name: str, spec: ShapeSpec
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | list[tuple[int, ...]]:
    """(min, opt, max) for a fixed shape or a range; a list of shapes for an enumeration."""
    fixed = _as_shape(spec, name)
    if fixed is not None:
        return fixed, fixed, fixed
    shapes = [_as_shape(s, name) for s in spec] if isinstance(spec, Sequence) else [None]
    if not shapes or any(s is None for s in shapes):
        raise InputShapeError(
            f"shapes[{name!r}] must be a shape like (1, 3, 224, 224), a (min, opt, max) tuple of "
            f"shapes, or a list of shapes to enumerate; got {spec!r}"
        )
    concrete = [s for s in shapes if s is not None]
    if len({len(s) for s in concrete}) != 1:
        raise InputShapeError(f"shapes[{name!r}]: all shapes must have the same rank: {spec!r}")
    if isinstance(spec, list):
        return concrete
    if len(concrete) != 3:
        raise InputShapeError(
            f"shapes[{name!r}]: a tuple of shapes must be (min, opt, max); "
            f"pass a list of shapes to enumerate them. Got {spec!r}"
        )
    lo, opt, hi = concrete
    for a, b, c in zip(lo, opt, hi, strict=True):
        if not a <= b <= c:
            raise InputShapeError(
                f"shapes[{name!r}]: need min <= opt <= max in every dimension, got {spec!r}"
            )
    return lo, opt, hi


def plan_inputs(
    graph: onnx.GraphProto,
    shapes: Mapping[str, ShapeSpec] | None,
    constants: set[str],
    *,
    bounded: bool = True,
) -> list[InputPlan]:
    """One plan per graph input that is not a constant. ``bounded=False`` (the op check)
    leaves dynamic dims without ``shapes`` symbolic instead of raising, and omits inputs whose
    rank is unknown or that are empty."""
    shapes = dict(shapes or {})
    graph_inputs = [i for i in graph.input if i.name not in constants]
    known = {i.name for i in graph_inputs}
    unknown = sorted(set(shapes) - known)
    if unknown:
        raise InputShapeError(
            f"shapes names {unknown}, which are not inputs of the model; inputs are {sorted(known)}"
        )
    taken: set[str] = set()
    symbols: dict[str, Any] = {}
    plans = []
    for value_info in graph_inputs:
        name = value_info.name
        tensor_type = value_info.type.tensor_type
        tensor = value_info.type.HasField("tensor_type")
        elem = tensor_type.elem_type
        onnx_dtype = np.dtype(helper.tensor_dtype_to_np_dtype(elem) if tensor else object)
        declared = _onnx_dims(value_info)
        if not bounded and not _plannable(tensor, onnx_dtype, declared, name in shapes):
            continue
        if not tensor:
            raise InputShapeError(f"input {name!r} is not a tensor; Core ML takes tensors only")
        if declared is None and name not in shapes:
            raise InputShapeError(
                f"input {name!r} declares no shape; pass its shape, e.g. shapes={{{name!r}: "
                "(1, 3, 224, 224)}, or a (min, opt, max) range"
            )
        ranges: tuple[tuple[int, int, int], ...] | None = None
        enumerated: tuple[tuple[int, ...], ...] | None = None
        if name in shapes:
            parsed = parse_shape_spec(name, shapes[name])
            options = parsed if isinstance(parsed, list) else list(parsed)
            dims: list[int | str | None] = (
                declared if declared is not None else [None] * len(options[0])
            )
            onnx_shape = tuple(d if d is not None else "?" for d in dims)
            _check_against_model(name, dims, options)
            if isinstance(parsed, list):
                enumerated = tuple(parsed)
                varying = [len({s[i] for s in parsed}) > 1 for i in range(len(dims))]
                fixed_dims = [None if v else parsed[0][i] for i, v in enumerate(varying)]
            else:
                lo, opt, hi = parsed
                ranges = tuple(zip(lo, opt, hi, strict=True))
                fixed_dims = [a if a == c else None for a, c in zip(lo, hi, strict=True)]
            sym = [
                d if d is not None else _symbol(dims[i], symbols) for i, d in enumerate(fixed_dims)
            ]
            if all(isinstance(d, int) for d in sym):
                ranges, enumerated = None, None
        else:
            dims = declared or []
            onnx_shape = tuple(d if d is not None else "?" for d in dims)
            if 0 in dims:
                raise InputShapeError(
                    f"input {name!r} has shape {onnx_shape}: Core ML tensors cannot be empty"
                )
            free = [i for i, d in enumerate(dims) if not isinstance(d, int)]
            if free and bounded:
                raise InputShapeError(_missing_bounds_message(name, dims, onnx_shape))
            sym = [d if isinstance(d, int) else _symbol(d, symbols) for d in dims] or [1]
        plans.append(
            InputPlan(
                onnx_name=name,
                mil_name=safe_name(name, taken),
                onnx_dtype=onnx_dtype,
                mil_dtype=mil_dtype_for(onnx_dtype),
                symbolic_shape=tuple(sym),
                ranges=ranges,
                enumerated=enumerated,
                onnx_shape=onnx_shape,
            )
        )
    return plans


def _plannable(
    tensor: bool, dtype: np.dtype[Any], dims: list[int | str | None] | None, shaped: bool
) -> bool:
    """Whether the op check can give this input a placeholder (else it is left unknown)."""
    if not tensor or (dtype.kind not in "biuf" and dtype.name != "bfloat16"):
        return False
    return shaped or (dims is not None and 0 not in dims)


def _symbol(dim: int | str | None, symbols: dict[str, Any]) -> Any:
    # The same dim_param on several inputs is one MIL symbol, so shape inference can tell
    # that input_ids and attention_mask share their sequence length.
    if isinstance(dim, str):
        if dim not in symbols:
            symbols[dim] = get_new_symbol()
        return symbols[dim]
    return get_new_symbol()


def _check_against_model(
    name: str, dims: list[int | str | None], options: list[tuple[int, ...]]
) -> None:
    for shape in options:
        if len(shape) != len(dims):
            raise InputShapeError(
                f"shapes[{name!r}] has rank {len(shape)} but the model's input has rank "
                f"{len(dims)} ({tuple(d if d is not None else '?' for d in dims)})"
            )
        for axis, (want, got) in enumerate(zip(dims, shape, strict=True)):
            if isinstance(want, int) and want != got:
                raise InputShapeError(
                    f"shapes[{name!r}] sets dimension {axis} to {got}, but the model fixes it "
                    f"to {want}"
                )


def _missing_bounds_message(
    name: str, dims: list[int | str | None], onnx_shape: tuple[int | str, ...]
) -> str:
    free = [
        f"{axis} ({d if d is not None else '?'})"
        for axis, d in enumerate(dims)
        if not isinstance(d, int)
    ]
    example_lo = tuple(d if isinstance(d, int) else 1 for d in dims)
    example_hi = tuple(d if isinstance(d, int) else 8 for d in dims)
    return (
        f"input {name!r} has shape {onnx_shape} with dynamic dimension(s) {', '.join(free)}. "
        "Core ML ML Programs need bounds for every dynamic dimension: pass "
        f"shapes={{{name!r}: ({example_lo}, {example_lo}, {example_hi})}} as (min, opt, max), "
        f"a fixed shape such as shapes={{{name!r}: {example_lo}}}, or a list of shapes to "
        "enumerate."
    )
