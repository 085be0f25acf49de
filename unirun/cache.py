"""The content-addressed compile cache: one artifact directory per build key."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock, Timeout

from .artifact import FORMAT_VERSION, Artifact
from .errors import ArtifactError

__all__ = ["CacheStatus", "CompileCache", "build_key", "default_cache_dir"]

log = logging.getLogger("unirun.cache")

#: ``hit``: loaded from cache; ``miss``: built now; ``rebuilt``: the entry was damaged and
#: rebuilt; ``off``: caching was disabled; ``artifact``: loaded from a saved artifact.
CacheStatus = Literal["hit", "miss", "rebuilt", "off", "artifact"]

_STALE_SECONDS = 24 * 3600


def default_cache_dir() -> Path:
    """``$UNIRUN_CACHE_DIR``, else the platform's user cache directory (``~/.cache/unirun``)."""
    env = os.environ.get("UNIRUN_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return platformdirs.user_cache_path("unirun", appauthor=False)


def build_key(fields: Mapping[str, Any]) -> str:
    """A hex digest of everything that makes two builds differ."""
    canonical = json.dumps(
        {"format_version": FORMAT_VERSION, **fields},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class CompileCache:
    """Artifacts under ``root/artifacts/<key>``; builds staged in ``root/tmp`` and renamed in.

    A cross-process file lock per key makes concurrent builders of the same key build once; a
    damaged entry (bad manifest, missing file, checksum mismatch) is logged and rebuilt.
    """

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or default_cache_dir()

    def entry(self, key: str) -> Path:
        return self.root / "artifacts" / key

    def engine_dir(self, backend: str) -> Path:
        """A directory a backend may use for its engine's own cache files."""
        path = self.root / "engines" / backend
        path.mkdir(parents=True, exist_ok=True)
        return path

    def get_or_build(
        self, key: str, build: Callable[[Path], Artifact]
    ) -> tuple[Artifact, CacheStatus]:
        """Return the cached artifact for ``key``, building it with ``build(staging_dir)`` if
        absent or damaged."""
        entry = self.entry(key)
        found, damaged = self._open(entry)
        if found is not None:
            return found, "hit"
        lock_path = self.root / "locks" / f"{key}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(lock_path))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            log.info("waiting for another process that is building cache entry %s", key[:12])
            lock.acquire()
        try:
            found, damaged_now = self._open(entry)  # another process may have built it meanwhile
            if found is not None:
                return found, "hit"
            damaged = damaged or damaged_now
            if entry.exists():
                shutil.rmtree(entry, ignore_errors=True)
            artifact = self._build(entry, build)
        finally:
            lock.release()
        return artifact, "rebuilt" if damaged else "miss"

    def _open(self, entry: Path) -> tuple[Artifact | None, bool]:
        if not entry.exists():
            return None, False
        try:
            return Artifact.open(entry), False
        except ArtifactError as exc:
            log.warning("rebuilding cache entry %s: %s", entry.name[:12], exc)
            return None, True

    def _build(self, entry: Path, build: Callable[[Path], Artifact]) -> Artifact:
        tmp_root = self.root / "tmp"
        tmp_root.mkdir(parents=True, exist_ok=True)
        self._sweep(tmp_root)
        staging = Path(tempfile.mkdtemp(prefix=f"{entry.name[:12]}-", dir=tmp_root))
        try:
            artifact = build(staging)
            entry.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging, entry)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return Artifact(entry, artifact.manifest)

    @staticmethod
    def _sweep(tmp_root: Path) -> None:
        """Remove staging directories left by crashed builds."""
        cutoff = time.time() - _STALE_SECONDS
        for stale in tmp_root.iterdir():
            try:
                if stale.stat().st_mtime < cutoff:
                    shutil.rmtree(stale, ignore_errors=True)
            except OSError:
                pass
