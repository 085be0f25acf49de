"""Options only the Core ML backend understands (shared ones are in ``unirun.CompileOptions``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Deployment targets coremltools 9 knows that can hold an ML Program.
TARGETS = (
    "iOS15", "iOS16", "iOS17", "iOS18", "macOS12", "macOS13", "macOS14", "macOS15",
    "watchOS8", "watchOS9", "watchOS10", "watchOS11", "tvOS15", "tvOS16", "tvOS17", "tvOS18",
)  # fmt: skip


class CoreMLOptions(BaseModel):
    """How the ONNX model becomes an ML Program. The compute unit is not an option: it follows
    the device chosen at load time (``cpu``, ``gpu``, ``ane``/``npu``, ``auto``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    deployment_target: str = Field(
        default="iOS17",
        description="Oldest OS the package must run on; newer targets allow newer MIL ops "
        "(iOS17 = macOS14).",
    )
    constant_inputs: dict[str, Any] = Field(
        default_factory=dict,
        description="Inputs whose values are known at compile time (a sample rate, a fixed "
        "mask), baked into the program as constants: name -> number or nested list.",
    )

    int8_compute: Literal["fp16", "fp32"] = Field(
        default="fp16",
        description="What a precision='int8' build computes in: its weights stay int8 in the "
        "package and Core ML dequantizes them to this float type. fp16 is Apple's recipe and "
        "the only one the Neural Engine runs; fp32 runs on the CPU and GPU only.",
    )

    @field_validator("deployment_target")
    @classmethod
    def _known_target(cls, value: str) -> str:
        if value not in TARGETS:
            raise ValueError(
                f"unknown deployment target {value!r}; use one of {', '.join(TARGETS)}"
            )
        return value
