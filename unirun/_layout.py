"""The on-disk layout of an artifact: the manifest's name and size limit, which payload paths
are allowed, reading the manifest safely, and putting a new artifact folder in place of an old
one without ever replacing anything else."""

from __future__ import annotations

import errno
import itertools
import json
import os
import secrets
import stat
from pathlib import Path, PurePosixPath

from . import _fs
from .errors import ArtifactError

MANIFEST_NAME = "manifest.json"
#: No real manifest comes near this; a bigger file is refused before it is read.
MANIFEST_LIMIT = 16 << 20


def valid_payload_path(value: str) -> bool:
    """A relative POSIX path inside the artifact, other than the manifest's."""
    p = PurePosixPath(value)
    return not (
        p.is_absolute()
        or ".." in p.parts
        or not p.parts
        or p.parts[0] == MANIFEST_NAME
        or "\0" in value
        or "\\" in value
    )


def why(exc: Exception) -> str:
    if isinstance(exc, ValueError):  # a NUL byte in a path
        return f"invalid path ({exc})"
    return _fs.why(exc) if isinstance(exc, OSError) else str(exc)


def read_manifest(directory: Path) -> bytes:
    manifest_path = directory / MANIFEST_NAME
    try:
        fd, st = _fs.open_inside(directory, MANIFEST_NAME)
    except FileNotFoundError:
        raise ArtifactError(
            f"{directory} is not a unirun artifact: it has no {MANIFEST_NAME}"
        ) from None
    except NotADirectoryError:
        raise ArtifactError(f"{directory} is not a unirun artifact: not a directory") from None
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{manifest_path} cannot be read: {why(exc)}") from exc
    try:
        if st.st_size > MANIFEST_LIMIT:
            raise ArtifactError(
                f"{manifest_path} is {st.st_size} bytes, far more than any unirun manifest "
                f"({MANIFEST_LIMIT} at most): not a unirun artifact"
            )
        return _fs.read_exact(fd, st.st_size)
    except OSError as exc:
        raise ArtifactError(f"{manifest_path} cannot be read: {_fs.why(exc)}") from exc
    finally:
        os.close(fd)


def check_destination(path: str | os.PathLike[str], *, overwrite: bool, parents: bool) -> None:
    """Refuse (``ArtifactError``) a place :meth:`Artifact.save` must not write to: an existing
    path without ``overwrite``, anything but a unirun artifact or an empty directory with it, a
    symbolic link, or a missing parent folder without ``parents``."""
    dest = Path(path)
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        if not parents and not dest.parent.is_dir():
            raise ArtifactError(
                f"cannot save to {dest}: the folder {dest.parent} does not exist; create it "
                "first, or pass --parents (parents=True from Python)"
            ) from None
        return
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot save to {dest}: {why(exc)}") from exc
    if not overwrite:
        raise ArtifactError(
            f"{dest} already exists; pass --force (overwrite=True from Python) to replace a "
            "unirun artifact"
        )
    if not stat.S_ISDIR(st.st_mode):  # lstat: a link is not a folder (and no second look races)
        raise ArtifactError(
            f"{dest} is {_fs.kind_of(st.st_mode)}, not a unirun artifact; refusing to replace it"
        )
    reason = _not_an_artifact(dest)
    for _ in range(16):  # another saver may have replaced it meanwhile: then look again
        try:
            now = os.lstat(dest)
        except OSError:
            return  # gone: nothing left to replace
        if reason is None or _same(st, now):
            break
        st, reason = now, _not_an_artifact(dest)
    if reason:
        raise ArtifactError(f"{dest} is not a unirun artifact ({reason}); refusing to replace it")


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _not_an_artifact(path: Path) -> str | None:
    """Why the directory ``path`` is not something :meth:`Artifact.save` may replace, or None:
    an empty directory, or a manifest listing every file present and nothing else there.
    Everything is read through one descriptor, so a concurrent swap cannot mix two folders."""
    try:
        fd = _fs.open_dir(path)
    except OSError as exc:
        return _fs.why(exc)
    entries = _fs.walk(path, fd)
    try:
        first = next(entries, None)
        if first is None:
            return None
        listed = _listed(path, fd)
        if isinstance(listed, str):
            return listed
        folders = {str(p) for f in listed for p in PurePosixPath(f).parents}
        for rel, kind in itertools.chain([first], entries):
            if kind == "dir" and rel in folders:
                continue
            if kind == "file" and (rel in listed or rel == MANIFEST_NAME):
                continue
            what = "a folder" if kind == "dir" else "a file" if kind == "file" else kind
            return f"it holds {rel}, {what} its manifest does not list"
        return None
    except OSError as exc:
        return _fs.why(exc)
    finally:
        entries.close()
        if fd >= 0:
            os.close(fd)


def _listed(path: Path, fd: int) -> set[str] | str:
    """The payload paths the manifest in ``path`` lists, or why it is not a unirun manifest."""
    try:
        mfd, st = _fs.open_inside(path, MANIFEST_NAME, fd)
    except OSError as exc:
        return f"{MANIFEST_NAME}: {_fs.why(exc)}"
    try:
        if st.st_size > MANIFEST_LIMIT:
            return f"its {MANIFEST_NAME} is too big to be a unirun manifest"
        raw = json.loads(_fs.read_exact(mfd, st.st_size))
        if raw["format"] != "unirun-artifact":
            raise ValueError(raw["format"])
        paths = [f["path"] for f in raw["files"]]
        if not all(isinstance(p, str) and valid_payload_path(p) for p in paths):
            raise ValueError("payload paths")
    except (OSError, ValueError, TypeError, KeyError, RecursionError):
        return f"its {MANIFEST_NAME} is not a unirun manifest"
    finally:
        os.close(mfd)
    return {str(PurePosixPath(p)) for p in paths}


def install(staging: Path, dest: Path, overwrite: bool) -> bool:
    """Put the complete copy ``staging`` at ``dest``. True when ``staging`` must be kept (it
    holds what was at ``dest`` and could not be put back)."""
    for _ in range(16):  # other threads or processes may be saving to ``dest`` at the same time
        if not os.path.lexists(dest):
            try:
                _fs.rename_new(staging, dest)
                return False
            except (FileExistsError, IsADirectoryError):
                continue
            except OSError as exc:
                if exc.errno == errno.ENOTEMPTY:  # created meanwhile
                    continue
                raise
        if not overwrite:
            raise ArtifactError(f"{dest} already exists (saved meanwhile by someone else)")
        if _fs.exchange(staging, dest):
            reason = _not_an_artifact(staging)  # what was at dest a moment ago
            if reason is None:
                return False
            if not _fs.exchange(staging, dest):
                raise ArtifactError(
                    f"{dest} was replaced by something that is not a unirun artifact while "
                    f"saving, and it could not be put back: it is now at {staging}"
                )
            raise ArtifactError(f"{dest} is not a unirun artifact ({reason}); refusing")
        old = dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.old")
        try:
            os.rename(dest, old)
        except FileNotFoundError:
            continue
        if _not_an_artifact(old) is not None:
            os.rename(old, dest)
            raise ArtifactError(f"{dest} is not a unirun artifact; refusing to replace it")
        try:
            os.rename(staging, dest)
        except OSError:
            _fs.remove(old)
            continue
        _fs.remove(old)
        return False
    raise ArtifactError(f"gave up saving to {dest}: other processes keep replacing it")
