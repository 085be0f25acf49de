"""Options only this engine understands (the shared ones live in ``unirun.CompileOptions``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TemplateOptions(BaseModel):
    """The engine's own options. ``None`` keeps the engine's default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fast_math: bool | None = Field(
        None, description="Let the engine reorder floating-point operations."
    )
    layout: Literal["nchw", "nhwc"] | None = Field(
        None, description="Memory layout the engine computes in."
    )
