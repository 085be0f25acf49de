"""The content-addressed compile cache: one artifact directory per build key."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import stat
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock, Timeout

from . import _fs
from ._stamps import StampBook
from .artifact import FORMAT_VERSION, Artifact
from .errors import ArtifactError, CacheError, OptionsError

__all__ = [
    "LOCK_TIMEOUT_ENV",
    "CacheStatus",
    "CompileCache",
    "build_key",
    "default_cache_dir",
    "is_backend_name",
]

log = logging.getLogger("unirun.cache")

#: ``hit``: loaded from cache; ``miss``: built now; ``rebuilt``: the entry was damaged and
#: rebuilt; ``off``: caching was disabled; ``artifact``: loaded from a saved artifact.
CacheStatus = Literal["hit", "miss", "rebuilt", "off", "artifact"]

#: Seconds a load waits for another process's build lock before giving up (default: forever).
LOCK_TIMEOUT_ENV = "UNIRUN_CACHE_LOCK_TIMEOUT"

_STALE_SECONDS = 24 * 3600
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")


def default_cache_dir() -> Path:
    """``$UNIRUN_CACHE_DIR``, else the platform's user cache directory (``~/.cache/unirun``)."""
    env = os.environ.get("UNIRUN_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return platformdirs.user_cache_path("unirun", appauthor=False)


def source_stamps(cache: object) -> StampBook | None:
    """The verified stamps that let a model's unchanged external weights skip re-hashing
    (:class:`~unirun.source.OnnxModel`), in the cache a ``cache=`` argument names; None for
    ``cache=False``."""
    return None if cache is False else CompileCache.from_option(cache).stamps


def build_key(fields: Mapping[str, Any]) -> str:
    """A hex digest of everything that makes two builds differ."""
    canonical = json.dumps(
        {"format_version": FORMAT_VERSION, **fields},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def is_backend_name(name: str) -> bool:
    """Whether ``name`` can name a folder of the cache: letters, digits, ``_.+-``, no ``..``."""
    return bool(_NAME.fullmatch(name)) and ".." not in name


class CompileCache:
    """Artifacts under ``root/artifacts/<key>``; builds staged in ``root/tmp`` and renamed in.

    A cross-process file lock per key makes concurrent builders of the same key build once. An
    entry is used only if it verifies (manifest sha256, every payload file) and its manifest
    matches the key's fields; otherwise the reason is logged and it is rebuilt, as is an entry
    that is a file or a dangling link. Waiting for another builder's lock logs a WARNING after
    :attr:`lock_warn_after` seconds and gives up with ``CacheError`` after ``lock_timeout``
    (``$UNIRUN_CACHE_LOCK_TIMEOUT``; default: wait as long as the other build takes).
    """

    #: Seconds of waiting for another process's build lock before a WARNING says so.
    lock_warn_after = 5.0

    def __init__(self, root: Path | None = None, *, lock_timeout: float | None = None) -> None:
        self.root = root or default_cache_dir()
        #: Stamps of payload files verified earlier (a cache hit need not re-read them).
        self.stamps = StampBook(self.root / "verified")
        self.lock_timeout = _env_timeout() if lock_timeout is None else lock_timeout

    @classmethod
    def from_option(cls, cache: object) -> CompileCache:
        """The cache that a ``cache=`` argument other than False names: True for the default
        one, or a folder path; anything else is ``OptionsError``."""
        if cache is True:
            return cls()
        if isinstance(cache, (str, os.PathLike)) and "\0" not in os.fspath(cache):
            return cls(Path(cache))
        raise OptionsError(
            "cache must be True (the default compile cache), False (no cache) or a folder path; "
            f"got {type(cache).__name__} {cache!r}"
        )

    def entry(self, key: str) -> Path:
        return self.root / "artifacts" / key

    def engine_dir(self, backend: str) -> Path:
        """A directory a backend may use for its engine's own cache files."""
        if not is_backend_name(backend):
            raise CacheError(
                f"backend name {backend!r} cannot name a folder of the compile cache; a "
                "backend's name is letters, digits and _.+- only"
            )
        return self._ensure(self.root / "engines" / backend)

    def get_or_build(
        self,
        key: str,
        build: Callable[[Path], Artifact],
        *,
        fields: Mapping[str, Any] | None = None,
    ) -> tuple[Artifact, CacheStatus]:
        """Return the cached artifact for ``key``, building it with ``build(staging_dir)`` if
        absent, damaged, or (given the ``fields`` the key was made from) built for another key.
        """
        entry = self.entry(key)
        found, damaged = self._open(entry, fields)
        if found is not None:
            return found, "hit"
        lock = self._lock(key)
        try:
            found, damaged_now = self._open(entry, fields)  # built by another process meanwhile?
            if found is not None:
                return found, "hit"
            artifact = self._build(entry, build)
        finally:
            lock.release()
        return artifact, "rebuilt" if damaged or damaged_now else "miss"

    # -- entries -----------------------------------------------------------------------------

    def _open(self, entry: Path, fields: Mapping[str, Any] | None) -> tuple[Artifact | None, bool]:
        name = entry.name[:12]
        try:
            st = os.lstat(entry)
        except (FileNotFoundError, NotADirectoryError):
            return None, False
        except OSError as exc:
            raise self._error(exc, entry) from exc
        if not stat.S_ISDIR(st.st_mode):
            log.warning(
                "rebuilding cache entry %s: it is %s, not a folder", name, _fs.kind_of(st.st_mode)
            )
            return None, True
        try:
            artifact = Artifact.open(entry, stamps=self.stamps)
        except ArtifactError as exc:
            log.warning("rebuilding cache entry %s: %s", name, exc)
            return None, True
        differs = _differs(artifact.manifest.model_dump(mode="json"), fields or {})
        if differs:
            log.warning(
                "rebuilding cache entry %s: its manifest was built for another key (%s differs); "
                "an entry copied or moved under another key is never used",
                name,
                differs,
            )
            return None, True
        return artifact, False

    def _build(self, entry: Path, build: Callable[[Path], Artifact]) -> Artifact:
        tmp_root = self._ensure(self.root / "tmp")
        self._sweep(tmp_root)
        staging = tmp_root / f"{entry.name[:12]}-{secrets.token_hex(6)}"
        try:
            os.mkdir(staging)  # not mkdtemp: entries get the umask's permissions
        except OSError as exc:
            raise self._error(exc, tmp_root) from exc
        try:
            artifact = build(staging)
            self._ensure(entry.parent)
            _fs.remove(entry)
            os.replace(staging, entry)
        except OSError as exc:
            _fs.remove(staging)
            raise self._error(exc, entry) from exc
        except BaseException:
            _fs.remove(staging)
            raise
        return artifact._moved(entry)

    @staticmethod
    def _sweep(tmp_root: Path) -> None:
        """Remove staging directories left by crashed builds."""
        cutoff = time.time() - _STALE_SECONDS
        try:
            stale = [p for p in tmp_root.iterdir() if p.lstat().st_mtime < cutoff]
        except OSError:
            return
        for path in stale:
            _fs.remove(path)

    # -- the file system ---------------------------------------------------------------------

    def _lock(self, key: str) -> FileLock:
        path = self._ensure(self.root / "locks") / f"{key}.lock"
        lock = FileLock(str(path))
        timeout = self.lock_timeout
        first = self.lock_warn_after if timeout is None else min(self.lock_warn_after, timeout)
        try:
            if _acquire(lock, 0):
                return lock
            log.info("waiting for another process that is building cache entry %s", key[:12])
            if _acquire(lock, first):
                return lock
            log.warning(
                "still waiting after %g s for the build lock %s: another process holds it (a "
                "long build, or a stopped or hung process); set %s=SECONDS to give up after a "
                "while",
                first,
                path,
                LOCK_TIMEOUT_ENV,
            )
            if timeout is None:
                lock.acquire()
                return lock
            if _acquire(lock, timeout - first):
                return lock
        except OSError as exc:
            raise self._error(exc, path) from exc
        raise CacheError(
            f"gave up after {timeout:g} s waiting for the build lock {path}: another process "
            f"holds it (a build still running, or a stopped or hung process; `fuser {path}` "
            f"names it). Stop that process, try again later, or raise {LOCK_TIMEOUT_ENV}",
            path=str(path),
        )

    def _ensure(self, path: Path) -> Path:
        """The folder ``path`` (the root or a folder inside it), created if missing. Inside the
        cache, a file or dangling link in the way is removed (logged); the root's problems are
        errors that say what to do."""
        root = self.root
        try:
            root.mkdir(parents=True, exist_ok=True)
        except (OSError, ValueError) as exc:
            raise self._error(exc, root) from exc
        current = root
        for part in path.relative_to(root).parts:
            current = current / part
            if os.path.lexists(current) and not os.path.isdir(current):
                log.warning(
                    "the compile cache's %s is %s, not a folder: replacing it",
                    current,
                    _fs.kind_of(os.lstat(current).st_mode),
                )
                _fs.remove(current)
            try:
                current.mkdir(exist_ok=True)
            except OSError as exc:
                raise self._error(exc, current) from exc
        return path

    def _error(self, exc: OSError | ValueError, path: Path) -> CacheError:
        elsewhere = (
            "point UNIRUN_CACHE_DIR (or cache=) at another folder, or pass cache=False to build "
            "without the cache"
        )
        if isinstance(exc, (FileExistsError, NotADirectoryError)):
            problem = f"the compile cache folder {self.root} is a file (or lies below one)"
            fix = f"remove it, or {elsewhere}"
        elif isinstance(exc, PermissionError):
            problem = f"cannot write to the compile cache at {path}: permission denied"
            fix = f"make {self.root} writable, or {elsewhere}"
        elif isinstance(exc, ValueError):
            problem, fix = f"the compile cache path {self.root!r} is invalid ({exc})", elsewhere
        else:
            problem = f"the compile cache at {path} cannot be used: {_fs.why(exc)}"
            fix = elsewhere
        return CacheError(f"{problem}; {fix}", path=str(path))


def _acquire(lock: FileLock, seconds: float) -> bool:
    try:
        lock.acquire(timeout=seconds)
    except Timeout:
        return False
    return True


def _differs(manifest: Mapping[str, Any], fields: Mapping[str, Any]) -> str | None:
    """The first key field the manifest records differently (fields it lacks are not compared)."""
    for name, value in fields.items():
        if name in manifest and _canonical(manifest[name]) != _canonical(value):
            return name
    return None


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _env_timeout() -> float | None:
    text = os.environ.get(LOCK_TIMEOUT_ENV, "").strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also NaN
        raise OptionsError(f"{LOCK_TIMEOUT_ENV} must be a number of seconds >= 0, got {text!r}")
    return seconds
