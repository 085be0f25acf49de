"""Compiled artifacts: a directory holding ``manifest.json`` and checksummed payload files."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._version import __version__
from .device import Device
from .errors import ArtifactError
from .options import CompileOptions, Precision
from .tensor import TensorSpec

if TYPE_CHECKING:
    from .backend import CompileResult

__all__ = ["FORMAT_VERSION", "MANIFEST_NAME", "Artifact", "Manifest", "PayloadFile"]

MANIFEST_NAME = "manifest.json"
#: Bumped when the manifest changes incompatibly; older unirun versions refuse newer artifacts.
FORMAT_VERSION = 1
_CHUNK = 1 << 20


class PayloadFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(description="POSIX path relative to the artifact directory.")
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        p = PurePosixPath(value)
        if p.is_absolute() or ".." in p.parts or not p.parts or value == MANIFEST_NAME:
            raise ValueError(f"payload path {value!r} must be relative and inside the artifact")
        return value


class SpecModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    dtype: str
    shape: list[int | str] | None


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


class Artifact:
    """A compiled model on disk. Open one with :meth:`open`; write a copy with :meth:`save`."""

    def __init__(self, directory: Path, manifest: Manifest) -> None:
        self.directory = directory
        self.manifest = manifest

    def __repr__(self) -> str:
        m = self.manifest
        return f"<Artifact {m.backend} on {m.device} at {self.directory}>"

    @property
    def backend(self) -> str:
        return self.manifest.backend

    @property
    def device(self) -> Device:
        return Device.parse(self.manifest.device)

    @property
    def inputs(self) -> list[TensorSpec]:
        return [TensorSpec.from_json(s.model_dump()) for s in self.manifest.inputs]

    @property
    def outputs(self) -> list[TensorSpec]:
        return [TensorSpec.from_json(s.model_dump()) for s in self.manifest.outputs]

    def path(self, name: str) -> Path:
        """The on-disk path of payload file (or payload directory) ``name``."""
        listed = any(
            f.path == name or f.path.startswith(name.rstrip("/") + "/") for f in self.manifest.files
        )
        if not listed:
            raise ArtifactError(
                f"artifact at {self.directory} has no payload {name!r}; it lists "
                f"{', '.join(f.path for f in self.manifest.files) or 'no files'}",
                field="files",
            )
        return self.directory / name

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, verify: bool = True) -> Artifact:
        """Read and validate the manifest; with ``verify``, check every payload checksum."""
        directory = Path(path)
        manifest_path = directory / MANIFEST_NAME
        try:
            raw = json.loads(manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ArtifactError(
                f"{directory} is not a unirun artifact: it has no {MANIFEST_NAME}"
            ) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"{manifest_path} is unreadable or not JSON: {exc}") from exc
        if not isinstance(raw, dict) or raw.get("format") != "unirun-artifact":
            raise ArtifactError(f"{manifest_path} is not a unirun manifest", field="format")
        version = raw.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ArtifactError(
                f"artifact format version {version!r} is newer than this unirun understands "
                f"({FORMAT_VERSION}); upgrade unirun (pip install -U unirun)",
                field="format_version",
            )
        try:
            manifest = Manifest.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ArtifactError(
                f"{manifest_path} is invalid at {where}: {first['msg']}", field=where
            ) from exc
        artifact = cls(directory, manifest)
        if verify:
            artifact.verify()
        return artifact

    def verify(self) -> None:
        """Check that every payload file is present with its recorded size and sha256."""
        for entry in self.manifest.files:
            file = self.directory / entry.path
            try:
                size = file.stat().st_size
            except OSError:
                raise ArtifactError(
                    f"artifact at {self.directory} is missing payload file {entry.path}",
                    field="files",
                ) from None
            if size != entry.size or _sha256(file) != entry.sha256:
                raise ArtifactError(
                    f"payload file {entry.path} of the artifact at {self.directory} does not "
                    "match its checksum: it was modified or damaged after the build",
                    field="files",
                )

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = True) -> Path:
        """Write a copy of this artifact to ``path`` (a directory), atomically; returns it."""
        dest = Path(path)
        if dest.resolve() == self.directory.resolve():
            return dest
        if dest.exists():
            if not overwrite:
                raise ArtifactError(f"{dest} already exists")
            if not (dest / MANIFEST_NAME).is_file():
                raise ArtifactError(
                    f"{dest} exists and is not a unirun artifact; refusing to replace it"
                )
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        try:
            for entry in self.manifest.files:
                target = staging / entry.path
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(self.directory / entry.path, target)
            (staging / MANIFEST_NAME).write_text(_dump(self.manifest), encoding="utf-8")
            _replace_dir(staging, dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return dest

    @classmethod
    def _seal(
        cls,
        directory: Path,
        stamp: Mapping[str, Any],
        options: CompileOptions,
        result: CompileResult,
    ) -> Artifact:
        """Checksum the payload a plugin wrote to ``directory`` and write the manifest (the
        core's job: plugins never see manifests)."""
        files = []
        for file in sorted(p for p in directory.rglob("*") if p.is_file()):
            rel = file.relative_to(directory).as_posix()
            if rel != MANIFEST_NAME:
                files.append(PayloadFile(path=rel, size=file.stat().st_size, sha256=_sha256(file)))
        precision = result.precision
        if result.portable:
            stamp = {**stamp, "device_identity": ""}
        try:
            manifest = Manifest(
                **stamp,
                options=options,
                computed_precision=None if precision == options.precision else precision,
                inputs=[SpecModel(**s.to_json()) for s in result.inputs],
                outputs=[SpecModel(**s.to_json()) for s in result.outputs],
                files=files,
                extra=dict(result.extra),
                unirun_version=__version__,
                created=datetime.now(timezone.utc),
            )
            text = _dump(manifest)
        except (ValidationError, TypeError, ValueError) as exc:
            raise ArtifactError(f"the backend produced an invalid manifest: {exc}") from exc
        (directory / MANIFEST_NAME).write_text(text, encoding="utf-8")
        return cls(directory, manifest)


def _dump(manifest: Manifest) -> str:
    return json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _replace_dir(new: Path, dest: Path) -> None:
    """Move ``new`` to ``dest``; an existing ``dest`` is swapped out first, then deleted."""
    if not dest.exists():
        os.replace(new, dest)
        return
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    os.replace(dest, old)
    os.replace(new, dest)
    shutil.rmtree(old, ignore_errors=True)
