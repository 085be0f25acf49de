"""Options only the emulator understands (the shared ones live in ``unirun.CompileOptions``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EmulatorOptions(BaseModel):
    """The emulator's own options. ``None`` keeps the emulator's default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lanes: int | None = Field(
        None, ge=1, le=64, description="Vector lanes of the emulated device (default 8)."
    )
    check_nan: bool = Field(
        False, description="Raise at run time when an output holds NaN (a debugging aid)."
    )
