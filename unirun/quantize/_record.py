"""What an int8 build records in its manifest, and the check every load makes of it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import OptionsError
from ._metrics import BOUND_COSINE, BOUND_RELATIVE, within_bound

if TYPE_CHECKING:
    from ..artifact import Manifest

__all__ = ["KEY", "SLOWER", "Candidate", "Int8Record", "check", "summary"]

log = logging.getLogger("unirun")

#: Where the record lives: ``manifest.extra["quantization"]``.
KEY = "quantization"
#: int8 counts as slower than fp32 when its median latency exceeds fp32's by more than this
#: factor (the issue's target: never more than 10 % slower; timing noise is a few percent).
SLOWER = 1.10


class Speed(BaseModel):
    """Median latency per call on the held-back sample, fp32 and int8 interleaved."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fp32_ms: float
    int8_ms: float

    @property
    def ratio(self) -> float:
        """int8 time ÷ fp32 time: below 1 is faster."""
        return self.int8_ms / self.fp32_ms if self.fp32_ms > 0 else float("inf")

    @property
    def slower(self) -> bool:
        return self.ratio > SLOWER


class Candidate(BaseModel):
    """One int8 form built and measured (or that failed to build)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    form: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    #: Per output: cosine, relative, max_abs, top1 (classifiers) or match (integer outputs).
    accuracy: dict[str, dict[str, float | None]] = Field(default_factory=dict)
    speed: Speed | None = None
    payload_bytes: int | None = None
    error: str | None = None

    @property
    def accurate(self) -> bool:
        return self.error is None and all(within_bound(s) for s in self.accuracy.values())

    @property
    def measured(self) -> bool:
        return self.error is None and bool(self.accuracy)

    def problems(self) -> list[str]:
        out = []
        for name, s in self.accuracy.items():
            if not within_bound(s):
                out.append(
                    f"output {name!r} mean cosine {_num(s.get('cosine'))} (bound ≥ "
                    f"{BOUND_COSINE}), max|Δ|/max|ref| {_num(s.get('relative'))} (bound ≤ "
                    f"{BOUND_RELATIVE})"
                )
        if self.speed is not None and self.speed.slower:
            out.append(
                f"{self.speed.int8_ms:.3g} ms per call against {self.speed.fp32_ms:.3g} ms in "
                f"fp32 ({self.speed.ratio:.2f}x the fp32 time)"
            )
        return out


class Int8Record(Candidate):
    """The chosen form and how it was made: ``manifest.extra["quantization"]``."""

    tool: str
    method: str = "minmax"
    cpu: dict[str, Any] = Field(default_factory=dict)
    calibration_sha256: str
    calibration_samples: int
    held_back_samples: int
    ranges_sha256: str | None = None
    #: False when the backend cannot run on this machine (accuracy and speed unmeasured).
    verified: bool
    bound: dict[str, float] = Field(
        default_factory=lambda: {
            "cosine": BOUND_COSINE,
            "relative": BOUND_RELATIVE,
            "slower": SLOWER,
        }
    )
    fp32_payload_bytes: int | None = None
    #: Every form tried, in order, with its measurements or its error.
    tried: list[Candidate] = Field(default_factory=list)


def summary(manifest: Manifest) -> str | None:
    """One line on the int8 build recorded in ``manifest`` (None if it is not one)."""
    raw = manifest.extra.get(KEY)
    if not isinstance(raw, dict):
        return None
    r = Int8Record.model_validate(raw)
    parts = [f"int8 form {r.form}"]
    for name, s in r.accuracy.items():
        if "cosine" in s:
            parts.append(
                f"{name!r}: mean cosine {_num(s.get('cosine'))}, max|Δ|/max|ref| "
                f"{_num(s.get('relative'))}"
            )
    if r.speed is not None:
        parts.append(f"{r.speed.ratio:.2f}x the fp32 time")
    if r.payload_bytes and r.fp32_payload_bytes:
        parts.append(f"{r.payload_bytes / r.fp32_payload_bytes:.0%} of the fp32 artifact")
    if not r.verified:
        parts.append("not verified on this machine")
    elif r.accuracy:
        parts.append(f"on {r.held_back_samples} held-back samples")
    return "; ".join(parts)


def _num(value: float | None) -> str:
    return "n/a (non-finite outputs)" if value is None else f"{value:.5g}"


def check(manifest: Manifest, strict: bool) -> None:
    """Warn about (or, with ``strict``, refuse) an int8 artifact outside the bound or slower
    than fp32 on the device it was built on."""
    raw = manifest.extra.get(KEY)
    if not isinstance(raw, dict):
        return
    record = Int8Record.model_validate(raw)
    where = f"the int8 model ({record.form}) on {manifest.backend} {manifest.device}"
    if not record.verified:
        log.warning(
            "%s was not verified: the backend cannot run on the machine that built it, so its "
            "accuracy and speed against fp32 are unmeasured",
            where,
        )
        return
    problems = record.problems()
    if not problems:
        return
    tried = ", ".join(c.form for c in record.tried)
    message = (
        f"{where} fails the int8 checks on the held-back calibration data: "
        f"{'; '.join(problems)} (forms tried: {tried})"
    )
    if strict:
        raise OptionsError(f"{message}; strict_precision=True refuses it")
    log.warning(
        "%s; use it knowingly, calibrate with data like the model's inputs, or keep fp32 "
        "(strict_precision=True makes this an error)",
        message,
    )
