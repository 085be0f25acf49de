"""Where ``backend="fastest"`` keeps its choices: ``<cache root>/choices/<key>.json``, written
atomically, so another process with the same model and settings does not measure again."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger("unirun")

__all__ = ["choice_key", "read_choice", "write_choice"]

FOLDER = "choices"
FORMAT = 1


def choice_key(fields: Mapping[str, Any]) -> str:
    canonical = json.dumps(
        {"format": FORMAT, **fields}, sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _path(root: Path, key: str) -> Path:
    return root / FOLDER / f"{key}.json"


def read_choice(root: Path, key: str) -> dict[str, Any] | None:
    """The stored record for ``key``, or None (absent, unreadable or of another format)."""
    path = _path(root, key)
    try:
        if not path.is_file() or path.stat().st_size > 1 << 20:
            return None
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.info("ignoring the stored fastest choice %s: %s", path, exc)
        return None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return None
    return record


def write_choice(root: Path, key: str, record: Mapping[str, Any]) -> None:
    """Store ``record`` atomically; a failure is logged, never raised (it only costs a later
    measurement)."""
    path = _path(root, key)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"format": FORMAT, **record}, fh, indent=1)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        log.warning("could not store the fastest choice in %s: %s", path.parent, exc)
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
