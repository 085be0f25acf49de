"""The values :mod:`unirun.inputs` invents for an input of a given shape: chosen by dtype and
name, or mined from the graph (:mod:`unirun._graph_hints`); and values that are not tensors
(sequences, maps, optionals), built from invented tensors."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ._graph_hints import Hint
from .dtypes import DType
from .tensor import TensorSpec
from .values import OptionalType, SequenceType, TensorType, ValueType

__all__ = ["invent", "tensor_values"]

Array = np.ndarray[Any, Any]

_RATE = re.compile(r"^(sr|sample_?rate|sampling_?rate|rate)$")


def tensor_values(
    spec: TensorSpec, shape: tuple[int, ...], hint: Hint | None, rng: np.random.Generator
) -> tuple[Array, str]:
    dtype, name = spec.dtype, spec.name.lower()
    single = int(np.prod(shape)) == 1
    if hint is not None and hint.categories and (dtype is DType.STRING or not dtype.is_float):
        known = hint.categories
        picks = np.empty(len(known), dtype=object if dtype is DType.STRING else dtype.numpy)
        picks[:] = known
        shown = ", ".join(map(repr, known[:4])) + (", …" if len(known) > 4 else "")
        return rng.choice(picks, shape), f"random categories the model's encoder knows ({shown})"
    if dtype is DType.STRING:
        return np.full(shape, "unirun", dtype=object), "the string 'unirun'"
    if hint is not None and hint.compared and single:
        value = hint.compared[0]
        shown = ", ".join(f"{v:g}" for v in dict.fromkeys(hint.compared))
        return (
            np.full(shape, value).astype(dtype.numpy),
            f"{value:g}: the graph compares it with {shown}",
        )
    if dtype is DType.BOOL:
        if "mask" in name:
            return np.ones(shape, bool), "all true (a mask)"
        return rng.random(shape) < 0.5, "random"
    if dtype.is_float or dtype.value.startswith("complex"):
        if single:
            return rng.uniform(0.5, 1.5, shape).astype(dtype.numpy), "uniform 0.5..1.5"
        return rng.standard_normal(shape).astype(dtype.numpy), "random normal"
    if "mask" in name:
        return np.ones(shape, dtype.numpy), "ones (a mask)"
    if "token_type" in name or "segment" in name:
        return np.zeros(shape, dtype.numpy), "zeros"
    if "position" in name and shape:
        positions = np.broadcast_to(np.arange(shape[-1]), shape)
        return positions.astype(dtype.numpy), "positions 0..n-1"
    if single and _RATE.match(name):
        return np.full(shape, 16000).astype(dtype.numpy), "16000, a sample rate"
    if hint is not None and hint.table:
        high = hint.table
        how = f"random 0..{high - 1}: indices into a {high}-row table (Gather)"
    elif dtype is DType.UINT8 and len(shape) >= 3:
        high, how = 256, "random 0..255 (an image)"
    else:
        high = 10 if dtype.bits >= 8 else 2 ** (dtype.bits - 1)
        how = f"random 0..{high - 1}"
    return rng.integers(0, high, shape).astype(dtype.numpy), how


def invent(
    kind: ValueType, name: str, hint: Hint | None, rng: np.random.Generator
) -> tuple[Any, str]:
    """A value of ``kind`` (not a tensor at the top) and how it was made."""
    if isinstance(kind, TensorType):
        shape = tuple(d if isinstance(d, int) else 3 for d in kind.shape or (3,))
        return tensor_values(TensorSpec(name, kind.dtype, kind.shape), shape, hint, rng)
    if isinstance(kind, OptionalType):
        value, how = invent(kind.element, name, hint, rng)
        return value, f"present: {how}"
    if isinstance(kind, SequenceType):
        items = [invent(kind.element, name, hint, rng) for _ in range(2)]
        return [v for v, _ in items], f"2 items, each {items[0][1]}"
    keys: list[Any] = [k for k in (hint.categories if hint else []) if _is_key(k, kind.key)]
    if not keys:
        keys = ["a", "b", "c"] if kind.key is DType.STRING else [0, 1, 2]
    keys = keys[:3] if len(keys) <= 8 else list(rng.choice(np.array(keys, dtype=object), 3))
    if isinstance(kind.value, TensorType):
        spec = TensorSpec(name, kind.value.dtype, ())
        values = [tensor_values(spec, (), None, rng) for _ in keys]
        how = f"random {kind.value.dtype} ({values[0][1]})" if values else ""
        mapping = {k: v[()] for k, (v, _) in zip(keys, values, strict=True)}
    else:
        inner = [invent(kind.value, name, None, rng) for _ in keys]
        how = inner[0][1] if inner else ""
        mapping = {k: v for k, (v, _) in zip(keys, inner, strict=True)}
    return mapping, f"keys {', '.join(map(repr, keys))} to {how}"


def _is_key(key: Any, dtype: DType) -> bool:
    return isinstance(key, str) if dtype is DType.STRING else isinstance(key, int)
