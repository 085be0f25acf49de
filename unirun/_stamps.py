"""Verified stamps: what a file looked like (size, modification and change times, inode) when
unirun last read it whole and found it good, so that an unchanged file need not be read again.

A stamp never replaces a check of a new or changed file: any difference in size, ``mtime_ns``,
``ctime_ns`` (which no user can set back), inode or device means "read it again". Stamps live in
the compile cache (``<cache>/verified``), which only unirun writes; a damaged stamp file is
ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

__all__ = ["StampBook", "identity"]

Stamp = tuple[int, int, int, int, int]


def identity(st: os.stat_result) -> Stamp:
    """What must not change for a file to count as the one verified."""
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


class StampBook:
    """One JSON file of stamps per subject (an artifact folder and its manifest's digest)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _file(self, subject: str) -> Path:
        return self.root / (hashlib.sha256(subject.encode()).hexdigest()[:40] + ".json")

    def get(self, subject: str) -> dict[str, Stamp]:
        try:
            raw = json.loads(self._file(subject).read_text(encoding="utf-8"))
            return {str(k): tuple(int(x) for x in v) for k, v in raw.items()}  # type: ignore[misc]
        except (OSError, ValueError, TypeError, AttributeError):
            return {}

    def put(self, subject: str, stamps: Mapping[str, Stamp]) -> None:
        """Record ``stamps`` (atomically; failures are ignored: a stamp is only a shortcut)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".stamp-")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({k: list(v) for k, v in stamps.items()}, fh)
            os.replace(tmp, self._file(subject))
        except OSError:
            pass
