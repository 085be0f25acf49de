"""Compile options shared by every backend (pydantic, frozen, unknown fields rejected)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import OptionsError

__all__ = ["CompileOptions", "Precision", "ShapeRange", "options_error"]

Precision = Literal["fp32", "fp16", "bf16", "int8"]

#: Engines hold dimensions in int64.
_LARGEST = 2**63 - 1
#: More threads than any machine has: a typo, or a value that overflows an engine's C int.
MAX_THREADS = 4096


class ShapeRange(BaseModel):
    """The shapes one input takes: smallest, the one to optimise for, largest (all inclusive).

    With ``choices`` the input takes exactly those shapes (``min``/``max`` are then their
    elementwise bounds and ``opt`` the first): engines that can specialise for a list (Core ML's
    EnumeratedShapes) do, the others treat it as the bounds.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]
    choices: tuple[tuple[int, ...], ...] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> ShapeRange:
        if self.choices is not None:
            if not self.choices or len({len(c) for c in self.choices}) != 1:
                raise ValueError("choices must be a non-empty list of shapes of one rank")
            bounds = ShapeRange.enumerated(self.choices)
            if (self.min, self.opt, self.max) != (bounds.min, bounds.opt, bounds.max):
                raise ValueError("min, opt and max of a list of choices follow from the choices")
        if not len(self.min) == len(self.opt) == len(self.max):
            raise ValueError(f"min, opt and max must have the same rank: {self.describe()}")
        for lo, mid, hi in zip(self.min, self.opt, self.max, strict=True):
            if lo < 0 or not lo <= mid <= hi:
                raise ValueError(
                    f"need 0 <= min <= opt <= max in every dimension: {self.describe()}"
                )
        _check_sizes(self.max)
        return self

    @classmethod
    def fixed(cls, shape: Sequence[int]) -> ShapeRange:
        dims = tuple(shape)
        return cls(min=dims, opt=dims, max=dims)

    @classmethod
    def enumerated(cls, shapes: Sequence[Sequence[int]]) -> ShapeRange:
        """Exactly these shapes; the first is the one to optimise for."""
        choices = tuple(tuple(int(d) for d in shape) for shape in shapes)
        if not choices or len({len(c) for c in choices}) != 1:
            raise ValueError("choices must be a non-empty list of shapes of one rank")
        for choice in choices:
            if any(d < 0 for d in choice):
                raise ValueError(f"dimensions cannot be negative: {choice}")
            _check_sizes(choice)
        low = tuple(min(dims) for dims in zip(*choices, strict=True))
        high = tuple(max(dims) for dims in zip(*choices, strict=True))
        return cls.model_construct(min=low, opt=choices[0], max=high, choices=choices)

    @property
    def is_fixed(self) -> bool:
        return self.min == self.max

    @property
    def rank(self) -> int:
        return len(self.min)

    def contains(self, shape: Sequence[int]) -> bool:
        if self.choices is not None:
            return tuple(shape) in self.choices
        return len(shape) == len(self.min) and all(
            lo <= d <= hi for lo, d, hi in zip(self.min, shape, self.max, strict=True)
        )

    def dim(self, axis: int) -> str:
        lo, hi = self.min[axis], self.max[axis]
        return str(lo) if lo == hi else f"{lo}..{hi}"

    def describe(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(str(c) for c in self.choices)
        if self.min == self.max:
            return f"({', '.join(map(str, self.min))})"
        return f"min {self.min}, opt {self.opt}, max {self.max}"


def _check_sizes(dims: Sequence[int]) -> None:
    for dim in dims:
        if dim > _LARGEST:
            raise ValueError(f"dimension {dim} is larger than an engine can hold (2**63 - 1)")


def _shape_range(value: Any) -> Any:
    """Accept a fixed shape ``(1, 3, 224, 224)``, a ``(min, opt, max)`` triple of shapes, or
    ``{"choices": [shape, ...]}``."""
    if isinstance(value, Mapping) and set(value) == {"choices"}:
        return ShapeRange.enumerated(value["choices"])
    if isinstance(value, (ShapeRange, Mapping)):
        return value
    if isinstance(value, Sequence) and not isinstance(value, str) and value:
        if all(isinstance(d, int) for d in value):
            return ShapeRange.fixed(value)
        if len(value) == 3 and all(isinstance(s, Sequence) for s in value):
            return {"min": value[0], "opt": value[1], "max": value[2]}
    raise ValueError(
        "a shape is a tuple of ints, a (min, opt, max) triple of such tuples, or "
        f'{{"choices": [shape, ...]}}; got {value!r}'
    )


class CompileOptions(BaseModel):
    """What to build, in engine-neutral terms. ``None`` means "the engine's default"."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    precision: Precision = Field(
        default="fp32", description="Compute precision of floating-point math."
    )
    shapes: dict[str, ShapeRange] = Field(
        default_factory=dict,
        description="Per input: a fixed shape or (min, opt, max) bounds for its dynamic dims.",
    )
    threads: int | None = Field(
        default=None, ge=1, le=MAX_THREADS, description="Threads one inference may use."
    )
    optimization_level: int | None = Field(
        default=None,
        ge=0,
        le=3,
        description="Graph optimisation: 0 none, 1 basic, 2 extended, 3 all.",
    )
    backend_options: dict[str, Any] = Field(
        default_factory=dict, description="The backend's own options, validated by its plugin."
    )

    @field_validator("shapes", mode="before")
    @classmethod
    def _parse_shapes(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ValueError("shapes is a mapping of input name to shape")
        return {name: _shape_range(shape) for name, shape in value.items()}


def options_error(
    exc: ValidationError, what: str, valid: Iterable[str] | None = None
) -> OptionsError:
    """A one-paragraph OptionsError from a pydantic ValidationError; ``valid`` (the accepted
    keys) is listed when an unknown key was given."""
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}" for err in exc.errors()
    )
    if valid is not None and any(err["type"] == "extra_forbidden" for err in exc.errors()):
        problems += f" (valid keys: {', '.join(sorted(valid)) or 'none'})"
    return OptionsError(f"invalid {what}: {problems}")
