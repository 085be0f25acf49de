"""``shapes`` (and the ``profiles`` option) to TensorRT optimisation profiles, as plain values.

Profile 0 comes from ``shapes``; it bounds every request, because unirun checks feeds against
``shapes`` before the engine sees them. Extra profiles must lie inside those bounds: they give
TensorRT narrower ranges (with their own ``opt``) to tune for, e.g. small and large batches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from unirun.errors import OptionsError
from unirun.options import ShapeRange
from unirun.tensor import TensorSpec

Shape = tuple[int, ...]
#: input name -> (min, opt, max)
Profile = dict[str, tuple[Shape, Shape, Shape]]


def dynamic_inputs(inputs: Sequence[TensorSpec]) -> list[str]:
    return [spec.name for spec in inputs if not spec.is_static]


def plan(
    inputs: Sequence[TensorSpec],
    shapes: Mapping[str, ShapeRange],
    extra: Sequence[Mapping[str, ShapeRange]] = (),
) -> list[Profile]:
    """The profiles to build: none for a static model, else ``shapes`` first, then ``extra``."""
    dynamic = dynamic_inputs(inputs)
    if not dynamic:
        if extra:
            raise OptionsError("profiles were given, but every input of the model is static")
        return []
    missing = [name for name in dynamic if name not in shapes]
    if missing:
        raise OptionsError(
            "TensorRT needs (min, opt, max) shapes for every dynamic input; give shapes= for "
            + ", ".join(repr(n) for n in missing)
        )
    base: Profile = {
        name: (shapes[name].min, shapes[name].opt, shapes[name].max) for name in dynamic
    }
    profiles = [base]
    for index, given in enumerate(extra, start=1):
        profile = dict(base)
        for name, bounds in given.items():
            if name not in base:
                raise OptionsError(
                    f"profile {index} names {name!r}, which is not a dynamic input of the model "
                    f"(dynamic inputs: {', '.join(dynamic)})"
                )
            _inside(index, name, bounds, shapes[name])
            profile[name] = (bounds.min, bounds.opt, bounds.max)
        profiles.append(profile)
    return profiles


def _inside(index: int, name: str, bounds: ShapeRange, envelope: ShapeRange) -> None:
    if bounds.rank != envelope.rank:
        raise OptionsError(
            f"profile {index} gives {name!r} rank {bounds.rank}, but shapes give rank "
            f"{envelope.rank}"
        )
    for axis in range(bounds.rank):
        lo, hi = bounds.min[axis], bounds.max[axis]
        if lo < envelope.min[axis] or hi > envelope.max[axis]:
            raise OptionsError(
                f"profile {index} gives {name!r} dimension {axis} as {bounds.dim(axis)}, outside "
                f"the shapes bounds {envelope.dim(axis)}; widen shapes= (they bound every request)"
            )


def select(profiles: Sequence[Profile], shapes: Mapping[str, Shape]) -> int:
    """The first profile whose ranges hold every input shape in ``shapes`` (0 if none does:
    profile 0 is the ``shapes`` bounds the core already checked)."""
    for index, profile in enumerate(profiles):
        if all(_holds(profile[name], shapes[name]) for name in profile if name in shapes):
            return index
    return 0


def _holds(bounds: tuple[Shape, Shape, Shape], shape: Shape) -> bool:
    lo, _, hi = bounds
    return len(shape) == len(lo) and all(a <= d <= b for a, d, b in zip(lo, shape, hi, strict=True))


def apply(builder: Any, config: Any, profiles: Sequence[Profile]) -> None:
    """Add ``profiles`` to a TensorRT builder config (``create_optimization_profile``…)."""
    for profile in profiles:
        trt_profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in profile.items():
            trt_profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(trt_profile)


def to_json(profiles: Sequence[Profile]) -> list[dict[str, list[list[int]]]]:
    return [{n: [list(s) for s in b] for n, b in p.items()} for p in profiles]


def from_json(data: Any) -> list[Profile]:
    profiles: list[Profile] = []
    for entry in data or []:
        profiles.append(
            {str(n): (tuple(b[0]), tuple(b[1]), tuple(b[2])) for n, b in dict(entry).items()}
        )
    return profiles
