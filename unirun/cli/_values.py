"""Outputs that are not tensors (lists, dicts, None) as the commands show, save and compare
them: a structure (lengths, keys, shapes) that must match exactly, and the numbers inside,
flattened into one array that the tensor code compares and summarises."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..values import ValueType

__all__ = ["comparable", "flatten", "short", "structure_difference", "to_npz"]

Array = np.ndarray[Any, Any]


def flatten(value: Any, kind: ValueType | None = None) -> tuple[list[str], Array]:
    """(structure, numbers): every length, key set and shape inside ``value``, and its
    tensors' elements (a map's in key order) as one flat array of the leaf type."""
    structure: list[str] = []
    leaves: list[Array] = []

    def walk(item: Any, path: str) -> None:
        if item is None:
            structure.append(f"{path or 'value'}: absent")
        elif isinstance(item, (list, tuple)):
            structure.append(f"{path or 'value'}: {len(item)} items")
            for i, sub in enumerate(item):
                walk(sub, f"{path}[{i}]")
        elif isinstance(item, Mapping):
            keys = sorted(item)
            structure.append(f"{path or 'value'}: keys {_keys(keys)}")
            for key in keys:
                walk(item[key], f"{path}[{key!r}]")
        else:
            array = np.asarray(item)
            structure.append(f"{path or 'value'}: shape {list(array.shape)}")
            leaves.append(array.reshape(-1))

    walk(value, "")
    dtype = kind.leaf.dtype.numpy if kind is not None else None
    if not leaves:
        return structure, np.zeros(0, dtype=dtype or np.float32)
    if dtype is not None and dtype.kind == "O":
        return structure, np.array([x for leaf in leaves for x in leaf], dtype=object)
    if dtype is not None:
        leaves = [leaf.astype(dtype) for leaf in leaves]
    return structure, np.concatenate(leaves)


def _keys(keys: list[Any]) -> str:
    shown = ", ".join(map(repr, keys[:8]))
    return f"[{shown}{', …' if len(keys) > 8 else ''}] ({len(keys)})"


def structure_difference(got: list[str], want: list[str]) -> str | None:
    """The first place where two structures differ, in words; None when they are the same."""
    for mine, theirs in zip(got, want, strict=False):
        if mine != theirs:
            return f"{mine}, where the baseline has {theirs}"
    if len(got) != len(want):
        return f"{len(got)} parts, where the baseline has {len(want)}"
    return None


def comparable(
    outputs: Mapping[str, Any], kinds: Mapping[str, ValueType | None]
) -> tuple[dict[str, Array], dict[str, list[str]]]:
    """``outputs`` with every value that is not a tensor flattened (see :func:`flatten`), and
    the structures of those values."""
    flat: dict[str, Array] = {}
    structures: dict[str, list[str]] = {}
    for name, value in outputs.items():
        kind = kinds.get(name)
        if kind is None and isinstance(value, np.ndarray):
            flat[name] = value
            continue
        structures[name], flat[name] = flatten(value, kind)
    return flat, structures


def short(value: Any, room: int = 80) -> str:
    """``value`` on one line, numbers with 4 significant digits, cut at about ``room``."""
    text = _short(value, room)
    return text if len(text) <= room else text[: room - 1] + "…"


def _short(value: Any, room: int) -> str:
    if value is None:
        return "None"
    if isinstance(value, (list, tuple)):
        parts: list[str] = []
        for item in value:
            parts.append(_short(item, room))
            if sum(map(len, parts)) > room:
                break
        more = ", …" if len(parts) < len(value) else ""
        return f"[{', '.join(parts)}{more}]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k!r}: {_short(v, room)}" for k, v in value.items()) + "}"
    array = np.asarray(value)
    if array.ndim == 0:
        item = array.item()
        return f"{item:.4g}" if isinstance(item, float) else repr(item)
    return np.array2string(array.reshape(-1)[:4], precision=4, separator=", ", threshold=8)


def to_npz(name: str, value: Any) -> dict[str, Array]:
    """Arrays for ``numpy.savez`` (no pickled objects): a sequence's items as ``NAME.0``,
    ``NAME.1``…, a map as ``NAME.keys`` and ``NAME.values`` (its values stacked) or ``NAME.KEY``
    each, an absent optional as nothing."""
    out: dict[str, Array] = {}
    if value is None:
        return out
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            out.update(to_npz(f"{name}.{i}", item))
        return out
    if isinstance(value, Mapping):
        items = list(value.items())
        if all(np.ndim(v) == 0 and not isinstance(v, (list, dict)) for _, v in items):
            out[f"{name}.keys"] = _plain(np.asarray([k for k, _ in items]))
            out[f"{name}.values"] = _plain(np.asarray([v for _, v in items]))
            return out
        for key, item in items:
            out.update(to_npz(f"{name}.{key}", item))
        return out
    out[name] = _plain(np.asarray(value))
    return out


def _plain(array: Array) -> Array:
    """Strings as a fixed-width unicode array: ``numpy.load`` reads it without pickle."""
    return array.astype(str) if array.dtype == object else array
