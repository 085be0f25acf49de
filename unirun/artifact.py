"""Compiled artifacts: a directory holding ``manifest.json`` and checksummed payload files.

An artifact is code-like: loading one hands its payload (an optimised graph, a compiled engine
blob) to the engine, which trusts it. unirun checks that an artifact is intact (every payload
file's size and sha256, the manifest's own sha256) and that it was built for the engine and
device at hand, but an intact artifact from an untrusted source is still untrusted: pin the
artifacts you deploy with ``unirun.load(path, expect_sha256=...)``.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import secrets
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from . import _fs
from ._layout import MANIFEST_NAME, check_destination, install, read_manifest, why
from ._manifest import (
    FORMAT_VERSION,
    Manifest,
    PayloadFile,
    SpecModel,
    dump_manifest,
    is_sha256,
    manifest_digest,
    parse_manifest,
)
from ._stamps import StampBook, identity
from ._version import __version__
from .device import Device
from .errors import ArtifactError, CompileError
from .options import CompileOptions
from .tensor import TensorSpec

if TYPE_CHECKING:
    from .backend import CompileResult

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "Artifact",
    "Manifest",
    "PayloadFile",
    "check_destination",
    "manifest_digest",
]


class Artifact:
    """A compiled model on disk. Open one with :meth:`open`; write a copy with :meth:`save`."""

    def __init__(self, directory: Path, manifest: Manifest) -> None:
        self.directory = Path(directory)
        self.manifest = manifest
        self._text: bytes | None = None  # the manifest as read, written unchanged by save()
        self._digest: str | None = None

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

    @property
    def sha256(self) -> str:
        """The artifact's identity: the sha256 of its manifest (:func:`manifest_digest`), which
        lists every payload file's sha256. ``unirun compile`` prints it; pin it with
        ``unirun.load(path, expect_sha256=...)``."""
        if self._digest is None:
            self._digest = manifest_digest(self.manifest.model_dump(mode="json"))
        return self._digest

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
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        verify: bool = True,
        expect_sha256: str | None = None,
        stamps: StampBook | None = None,
    ) -> Artifact:
        """Read and validate the manifest; with ``verify``, check every payload file.

        ``expect_sha256`` (the :attr:`sha256` ``unirun compile`` printed) refuses any other
        artifact, however intact: use it for artifacts that come from elsewhere. ``stamps``
        (the compile cache's) lets a payload file that has not changed since it was last
        verified skip its checksum (see :meth:`verify`).
        """
        directory = Path(path)
        manifest_path = directory / MANIFEST_NAME
        text = read_manifest(directory)
        manifest, digest = parse_manifest(text, manifest_path)
        artifact = cls(directory, manifest)
        artifact._text, artifact._digest = text, digest
        if expect_sha256 is not None:
            artifact.check_sha256(expect_sha256)
        if verify:
            artifact.verify(stamps)
        return artifact

    def check_sha256(self, expected: str) -> None:
        """``ArtifactError`` (field ``sha256``) unless :attr:`sha256` is ``expected``."""
        if not isinstance(expected, str) or not is_sha256(expected.lower()):
            raise ArtifactError(
                f"expect_sha256 must be 64 hexadecimal digits (as `unirun compile` prints), "
                f"got {expected!r}",
                field="sha256",
            )
        actual = self.sha256
        if actual != expected.lower():
            raise ArtifactError(
                f"the artifact at {self.directory} has sha256 {actual}, not the expected "
                f"{expected.lower()}: it is another build, or it was replaced; load it only if "
                "you trust where it came from",
                field="sha256",
            )

    def verify(self, stamps: StampBook | None = None) -> None:
        """Check that every payload file is a regular file inside the artifact (no symbolic
        link on its way) with its recorded size and sha256.

        With ``stamps``, a file whose size, modification and change times and inode are those
        it had when it last passed this check is not read again (a cache hit then costs a few
        ``stat`` calls, not a read of every payload); a new or changed file always is."""
        subject = f"{os.path.realpath(self.directory)}\0{self.sha256}"
        known = stamps.get(subject) if stamps is not None else {}
        seen: dict[str, tuple[int, int, int, int, int]] = {}
        for entry in self.manifest.files:
            try:
                fd, st = _fs.open_inside(self.directory, entry.path)
            except FileNotFoundError:
                raise ArtifactError(
                    f"artifact at {self.directory} is missing payload file {entry.path}",
                    field="files",
                ) from None
            except (OSError, ValueError) as exc:
                raise ArtifactError(
                    f"payload file {entry.path} of the artifact at {self.directory} cannot be "
                    f"used: {why(exc)}",
                    field="files",
                ) from exc
            stamp = identity(st)
            try:
                same = st.st_size == entry.size and (
                    known.get(entry.path) == stamp or _fs.digest(fd, entry.size) == entry.sha256
                )
            except OSError as exc:
                raise ArtifactError(
                    f"payload file {entry.path} of the artifact at {self.directory} cannot be "
                    f"read: {_fs.why(exc)}",
                    field="files",
                ) from exc
            finally:
                os.close(fd)
            if not same:
                raise ArtifactError(
                    f"payload file {entry.path} of the artifact at {self.directory} does not "
                    "match its checksum: it was modified or damaged after the build",
                    field="files",
                )
            seen[entry.path] = stamp
        if stamps is not None and seen != known:
            stamps.put(subject, seen)

    def save(
        self, path: str | os.PathLike[str], *, overwrite: bool = False, parents: bool = False
    ) -> Path:
        """Write a copy of this artifact to the directory ``path`` and return it.

        The copy appears at once, complete, or not at all. With ``overwrite``, an existing
        unirun artifact at ``path`` is replaced (also atomically), and nothing else ever is: a
        directory holding any file its manifest does not list is refused with
        ``ArtifactError``. ``path``'s parent folder must exist unless ``parents`` is true.
        Payload files are copied from the artifact only if they still match their sha256.
        """
        dest = Path(path)
        with contextlib.suppress(OSError, ValueError):
            if os.path.samefile(dest, self.directory):
                return dest
        check_destination(dest, overwrite=overwrite, parents=parents)
        try:
            if parents:
                dest.parent.mkdir(parents=True, exist_ok=True)
            staging = dest.parent / f".{dest.name}.{secrets.token_hex(6)}.tmp"
            os.mkdir(staging)  # not mkdtemp: the copy gets the umask's permissions
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"cannot save the artifact to {dest}: {why(exc)}") from exc
        keep_staging = False
        try:
            self._copy_to(staging)
            keep_staging = install(staging, dest, overwrite)
        except OSError as exc:
            raise ArtifactError(
                f"could not write the artifact to {dest}: {_fs.why(exc)}; {dest} is unchanged"
            ) from exc
        finally:
            if not keep_staging:
                _fs.remove(staging)
        return dest

    def _moved(self, directory: Path) -> Artifact:
        """This artifact after its directory was renamed to ``directory``."""
        moved = Artifact(directory, self.manifest)
        moved._text, moved._digest = self._text, self._digest
        return moved

    def _copy_to(self, staging: Path) -> None:
        for entry in self.manifest.files:
            target = staging / entry.path
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd, st = _fs.open_inside(self.directory, entry.path)
            except (OSError, ValueError) as exc:
                raise ArtifactError(
                    f"cannot copy payload file {entry.path} of the artifact at "
                    f"{self.directory}: {why(exc)}",
                    field="files",
                ) from exc
            try:
                same = st.st_size == entry.size
                same = same and _fs.copy_out(fd, entry.size, target) == entry.sha256
            finally:
                os.close(fd)
            if not same:
                raise ArtifactError(
                    f"payload file {entry.path} of the artifact at {self.directory} changed "
                    "since it was opened (it no longer matches its checksum); nothing was saved",
                    field="files",
                )
        text = self._text if self._text is not None else dump_manifest(self.manifest)
        (staging / MANIFEST_NAME).write_bytes(text)

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
        for rel, kind in sorted(_fs.walk(directory)):
            if kind == "dir" or rel == MANIFEST_NAME:
                continue
            if kind != "file":
                raise CompileError(
                    f"the backend left {rel}, {kind}, among the payload files; an artifact holds "
                    "regular files only (a plugin bug)"
                )
            fd, st = _fs.open_inside(directory, rel)
            try:
                files.append(
                    PayloadFile(path=rel, size=st.st_size, sha256=_fs.digest(fd, st.st_size))
                )
            finally:
                os.close(fd)
        _check_self_contained(directory, [f.path for f in files])
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
            text = dump_manifest(manifest)
        except (ValidationError, TypeError, ValueError) as exc:
            raise ArtifactError(f"the backend produced an invalid manifest: {exc}") from exc
        (directory / MANIFEST_NAME).write_bytes(text)
        artifact = cls(directory, manifest)
        artifact._text = text
        return artifact


def _check_self_contained(directory: Path, files: list[str]) -> None:
    """An ONNX payload whose weights live outside the artifact could never load elsewhere."""
    from .source import external_locations

    listed = set(files)
    for rel in files:
        if not rel.endswith(".onnx"):
            continue
        for location in external_locations(directory / rel):
            inside = posixpath.normpath(posixpath.join(posixpath.dirname(rel), location))
            if inside not in listed:
                raise CompileError(
                    f"the backend wrote {rel}, whose weights refer to {location!r}, a file "
                    "outside the artifact: it could never be loaded (a plugin bug; the build "
                    "was not kept)"
                )
