"""The sizes :mod:`unirun.inputs` invents for the dimensions a model leaves open: each
dimension's *role* (batch, channels, spatial, depth, audio, length), guessed from its name, the
input's name, its rank and the axis, and the first size and growth per retry of each role."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .errors import InputError
from .options import ShapeRange
from .tensor import Dim, TensorSpec

__all__ = ["SIZES", "Role", "choose_dims"]

Array = np.ndarray[Any, Any]
Role = Literal["batch", "channels", "spatial", "depth", "audio", "length"]

#: First size, growth factor per retry, for each role (batch and channels never grow).
SIZES: dict[Role, tuple[int, int]] = {
    "batch": (1, 1),
    "channels": (3, 1),
    "spatial": (224, 2),
    "depth": (16, 2),
    "audio": (16000, 2),
    "length": (256, 4),
}

_WORDS: dict[Role, re.Pattern[str]] = {
    "batch": re.compile(r"^(n|b|bs|num_images|.*batch.*)$"),
    "spatial": re.compile(r"^(h|w|height|width|.*_(h|w|height|width)|(height|width)_.*)$"),
    "depth": re.compile(r"^(d|depth|frames?|num_frames)$"),
    "audio": re.compile(r".*(samples|audio|wav|pcm|waveform|signal).*"),
    "length": re.compile(r".*(seq|len|length|time|steps|tokens|words|past|total).*"),
}
_STATE = re.compile(r"(^|[_.])(state|states|hidden|h0|c0|hx|cx|memory|cache)([_.\d]|$)|^h$|^c$")
_AUDIO_INPUT = re.compile(r".*(audio|wav|waveform|pcm|speech|signal).*")


@dataclass
class _Dim:
    size: int
    factor: int = 1  # growth per retry; 1: never grows
    role: str = ""


def choose_dims(
    specs: Iterable[TensorSpec], given: Mapping[str, Array], shapes: Mapping[str, ShapeRange]
) -> dict[str, list[_Dim]]:
    symbols: dict[str, _Dim] = {}
    for spec in specs:  # a size the caller's arrays fix holds for every input that shares it
        array = given.get(spec.name)
        if array is not None and spec.shape is not None and array.ndim == len(spec.shape):
            for dim, size in zip(spec.shape, array.shape, strict=True):
                if isinstance(dim, str) and dim not in ("?", ""):
                    symbols.setdefault(dim, _Dim(size))
    out: dict[str, list[_Dim]] = {}
    for spec in specs:
        if spec.name in given or spec.kind is not None:
            continue
        bounds = shapes.get(spec.name)
        if bounds is not None:
            out[spec.name] = [_Dim(d) for d in bounds.opt]
            continue
        if spec.shape is None:
            raise InputError(
                f"input {spec.name!r} has no declared rank, so unirun cannot invent it; give "
                f"it: --input {spec.name}=FILE.npy or --shape {spec.name}=DIMS (Python: "
                f"shapes={{{spec.name!r}: (...)}})",
                spec.name,
            )
        dims: list[_Dim] = []
        for axis, dim in enumerate(spec.shape):
            if isinstance(dim, int):
                dims.append(_Dim(dim))
                continue
            named = dim not in ("?", "")
            if named and dim in symbols:
                dims.append(symbols[dim])
                continue
            role = _role(spec, axis, dim if named else "")
            chosen = _Dim(*SIZES[role], role=role)
            if named:
                symbols[dim] = chosen
            dims.append(chosen)
        out[spec.name] = dims
    return out


def _role(spec: TensorSpec, axis: int, dim: str) -> Role:
    word = dim.lower()
    for role in ("batch", "spatial", "depth", "audio", "length"):
        if word and _WORDS[role].match(word):
            return role
    shape: tuple[Dim, ...] = spec.shape or ()
    rank = len(shape)
    name = spec.name.lower()
    if _STATE.search(name) or (rank == 3 and axis == 1 and isinstance(shape[0], int)):
        return "batch"  # recurrent state [layers, batch, hidden]: its free dims are the batch
    if axis == 0 and rank >= 2:
        return "batch"
    if rank == 4:
        nhwc = isinstance(shape[3], int) and shape[3] <= 4
        if axis == (3 if nhwc else 1):
            return "channels"
        return "spatial"
    if rank == 5:
        return "channels" if axis == 1 else "depth" if axis == 2 else "spatial"
    if _AUDIO_INPUT.match(name) and spec.dtype.is_float:
        return "audio"
    return "length"
