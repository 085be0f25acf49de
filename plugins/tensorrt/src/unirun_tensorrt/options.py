"""Options only TensorRT understands (the shared ones live in ``unirun.CompileOptions``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from unirun.options import ShapeRange


class TensorRTOptions(BaseModel):
    """TensorRT builder settings. ``None`` keeps TensorRT's default.

    Shared options map as follows: ``precision`` → the precision flags on TensorRT 10, an fp16
    or bf16 ONNX model on TensorRT 11 (strongly typed); ``shapes`` → optimisation profile 0.
    ``threads`` and ``optimization_level`` have no TensorRT counterpart and are ignored (see
    ``builder_optimization_level``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    workspace: int | None = Field(
        default=None,
        ge=1 << 20,
        description="Bytes of GPU memory the builder may use for scratch space "
        "(MemoryPoolType.WORKSPACE); None: TensorRT's default, the whole device.",
    )
    builder_optimization_level: int | None = Field(
        default=None,
        ge=0,
        le=5,
        description="How hard the builder searches for fast kernels, 0 (fast builds) to 5 "
        "(slowest builds); TensorRT's default is 3.",
    )
    hardware_compatibility: Literal["ampere_plus", "same_compute_capability"] | None = Field(
        default=None,
        description="Build a plan that also runs on other GPUs: 'ampere_plus' (any GPU of "
        "compute capability 8.0 or newer) or 'same_compute_capability'. None: only on GPUs "
        "like the one that built it (fastest).",
    )
    tf32: bool | None = Field(
        default=None,
        description="Allow TF32 math for fp32 layers. None: off for precision='fp32' (exact "
        "fp32, unirun's promise), TensorRT's default (on) for fp16/bf16 builds.",
    )
    profiles: list[dict[str, ShapeRange]] = Field(
        default_factory=list,
        description="Optimisation profiles beyond the one `shapes` gives, each a mapping input "
        "→ fixed shape or (min, opt, max) inside the `shapes` bounds; inputs a profile leaves "
        "out keep their `shapes` range. The profile whose ranges hold a request is used.",
    )
    timing_cache: bool = Field(
        default=True,
        description="Keep TensorRT's timing cache (kernel timings) in the unirun cache and "
        "share it between builds, which makes later builds faster.",
    )

    @field_validator("profiles", mode="before")
    @classmethod
    def _parse_profiles(cls, value: Any) -> Any:
        if not isinstance(value, Sequence) or isinstance(value, str):
            raise ValueError("profiles is a list of mappings input name -> shape")
        return [
            {name: _shape(shape) for name, shape in _mapping(profile).items()} for profile in value
        ]


def _mapping(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"each profile is a mapping input name -> shape, not {value!r}")
    return value


def _shape(value: Any) -> Any:
    if isinstance(value, (ShapeRange, Mapping)):
        return value
    if isinstance(value, Sequence) and not isinstance(value, str) and value:
        if all(isinstance(d, int) for d in value):
            return ShapeRange.fixed(value)
        if len(value) == 3 and all(isinstance(s, Sequence) for s in value):
            return {"min": value[0], "opt": value[1], "max": value[2]}
    raise ValueError(
        f"a profile shape is a tuple of ints or a (min, opt, max) triple; got {value!r}"
    )
