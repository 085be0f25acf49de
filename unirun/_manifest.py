"""The manifest of an artifact (:mod:`unirun.artifact`, which re-exports the public names): its
models, the digest that identifies it, and reading it (format version and own sha256 checked)
and writing it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._layout import valid_payload_path
from .errors import ArtifactError
from .options import CompileOptions, Precision
from .values import from_json

__all__ = [
    "FORMAT_VERSION",
    "Manifest",
    "PayloadFile",
    "SpecModel",
    "dump_manifest",
    "is_sha256",
    "manifest_digest",
    "parse_manifest",
]

#: Bumped when the manifest changes incompatibly; unirun refuses other versions with a reason.
#: 2: the manifest carries its own ``sha256``.
FORMAT_VERSION = 2
_SHA256 = r"^[0-9a-f]{64}$"


class PayloadFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(description="POSIX path relative to the artifact directory.")
    size: int = Field(ge=0)
    sha256: str = Field(pattern=_SHA256)

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        if not valid_payload_path(value):
            raise ValueError(f"payload path {value!r} must be relative and inside the artifact")
        return value


class SpecModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    dtype: str
    shape: list[int | str] | None
    #: The :mod:`unirun.values` type of an input/output that is not a tensor (a sequence, a
    #: map, an optional), as ``ValueType.to_json()`` writes it; absent for tensors, so that
    #: the manifests of tensor models are what they were before value kinds existed.
    kind: dict[str, Any] | None = Field(default=None, exclude_if=lambda v: v is None)

    @field_validator("kind")
    @classmethod
    def _value_type(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            from_json(value)  # a ValueError says what is wrong
        return value


class Manifest(BaseModel):
    """What an artifact is and how it was built; validated whenever an artifact is opened."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["unirun-artifact"] = "unirun-artifact"
    format_version: int = FORMAT_VERSION
    backend: str
    plugin_version: str
    api_version: int
    runtime_version: str | None
    #: ``Capabilities.artifact_format`` of the plugin that built it (checked at load).
    artifact_format: str = ""
    device: str
    device_identity: str = ""
    options: CompileOptions
    #: The precision the engine computes in, when the plugin reported it differs from
    #: ``options.precision`` (the request); None means "as requested".
    computed_precision: Precision | None = None
    source_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    inputs: list[SpecModel]
    outputs: list[SpecModel]
    files: list[PayloadFile]
    extra: dict[str, Any] = Field(default_factory=dict)
    unirun_version: str
    created: datetime


def manifest_digest(data: Mapping[str, Any]) -> str:
    """The sha256 a manifest carries in its ``sha256`` field: of the manifest's JSON without that
    field, keys sorted, no whitespace (``json.dumps(..., sort_keys=True, separators=(",", ":"))``).

    As the manifest lists every payload file's sha256, this one digest identifies the whole
    artifact: it is :attr:`Artifact.sha256`, and what ``unirun.load(expect_sha256=...)`` checks.
    """
    body = {k: v for k, v in data.items() if k != "sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def parse_manifest(text: bytes, where: Path) -> tuple[Manifest, str]:
    """The validated manifest and its (checked) digest."""
    try:
        raw = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ArtifactError(f"{where} is unreadable or not JSON: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("format") != "unirun-artifact":
        raise ArtifactError(f"{where} is not a unirun manifest", field="format")
    version = raw.get("format_version")
    if type(version) is not int:
        raise ArtifactError(
            f"{where} has format_version {version!r}, not a number", field="format_version"
        )
    if version > FORMAT_VERSION:
        raise ArtifactError(
            f"artifact format version {version!r} is newer than this unirun understands "
            f"({FORMAT_VERSION}); upgrade unirun (pip install -U unirun)",
            field="format_version",
        )
    if version < FORMAT_VERSION:
        raise ArtifactError(
            f"artifact format version {version} is older than this unirun reads "
            f"({FORMAT_VERSION}, whose manifests carry a sha256); recompile the model",
            field="format_version",
        )
    stored = raw.get("sha256")
    try:
        digest = manifest_digest(raw)
    except (ValueError, RecursionError) as exc:
        raise ArtifactError(f"{where} holds values JSON cannot represent: {exc}") from exc
    if stored != digest:
        raise ArtifactError(
            f"{where} does not match its sha256 field: it was edited or damaged after the "
            "build (recompile the model; never edit a manifest by hand)",
            field="sha256",
        )
    del raw["sha256"]
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ArtifactError(f"{where} is invalid at {loc}: {first['msg']}", field=loc) from exc
    except (ValueError, TypeError, RecursionError) as exc:
        raise ArtifactError(f"{where} is invalid: {exc}") from exc
    return manifest, digest


def dump_manifest(manifest: Manifest) -> bytes:
    data = manifest.model_dump(mode="json")
    data["sha256"] = manifest_digest(data)
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)
