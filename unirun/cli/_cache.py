"""``unirun cache info|clear``: where the compile cache is, what it holds, and emptying it."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from .. import _fs, _registry
from .._layout import read_manifest
from ..cache import default_cache_dir, is_backend_name
from ..errors import ArtifactError
from ._app import EXIT_USAGE, app, console, escape, fail, human_bytes, write_json

cache_app = typer.Typer(
    help="Show or clear the compile cache ($UNIRUN_CACHE_DIR).", no_args_is_help=True
)
app.add_typer(cache_app, name="cache")


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file():
                total += p.stat().st_size
        except OSError:  # removed meanwhile
            pass
    return total


def _backend_of(entry: Path) -> str:
    """The backend recorded in an entry's manifest, or ``?`` for a damaged entry."""
    try:
        return str(json.loads(read_manifest(entry))["backend"])
    except (ArtifactError, ValueError, KeyError, TypeError, RecursionError):
        return "?"


def _entries(root: Path) -> list[Path]:
    artifacts = root / "artifacts"
    if not artifacts.is_dir():
        return []
    return sorted(p for p in artifacts.iterdir() if p.is_dir() and not p.is_symlink())


def _inside(root: Path, path: Path) -> bool:
    real, top = os.path.realpath(path), os.path.realpath(root)
    return os.path.commonpath([real, top]) == top and real != top


def _remove(root: Path, path: Path) -> int:
    """Delete ``path`` if it lies inside the cache ``root`` (a link is removed, never what it
    points to); the bytes freed."""
    if os.path.islink(path):
        os.unlink(path)
        return 0
    if not _inside(root, path):
        return 0
    size = _size(path)
    _fs.remove(path)
    return size


def _valid_names(root: Path) -> set[str]:
    """Backends a user may name: installed ones, and those the cache itself holds."""
    names = set(_registry._all_entries())
    names.update(_backend_of(entry) for entry in _entries(root))
    engines = root / "engines"
    if engines.is_dir():
        names.update(p.name for p in engines.iterdir())
    return {n for n in names if is_backend_name(n)}


@cache_app.command()
def info(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Where the cache is, how many compiled entries it holds per backend, and their size."""
    root = default_cache_dir()
    per_backend: dict[str, dict[str, int]] = defaultdict(lambda: {"entries": 0, "bytes": 0})
    for entry in _entries(root):
        row = per_backend[_backend_of(entry)]
        row["entries"] += 1
        row["bytes"] += _size(entry)
    engines = root / "engines"
    engine_bytes = _size(engines) if engines.is_dir() else 0
    data: dict[str, Any] = {
        "location": str(root),
        "exists": root.is_dir(),
        "entries": sum(r["entries"] for r in per_backend.values()),
        "bytes": sum(r["bytes"] for r in per_backend.values()) + engine_bytes,
        "engine_cache_bytes": engine_bytes,
        "backends": dict(sorted(per_backend.items())),
    }
    if as_json:
        write_json(data)
        return
    console.print(f"[bold]location[/]: {escape(str(root))}" + ("" if root.is_dir() else " (empty)"))
    console.print(
        f"[bold]entries[/]: {data['entries']} · [bold]size[/]: {human_bytes(data['bytes'])}"
        f" (engine caches {human_bytes(engine_bytes)})"
    )
    if per_backend:
        table = Table(show_edge=False)
        table.add_column("backend", style="bold")
        table.add_column("entries", justify="right")
        table.add_column("size", justify="right")
        for name, row in sorted(per_backend.items()):
            table.add_row(escape(name), str(row["entries"]), human_bytes(row["bytes"]))
        console.print(table)


@cache_app.command()
def clear(
    backend: str | None = typer.Option(
        None, "--backend", "-b", help="Remove only this backend's entries and engine cache."
    ),
) -> None:
    """Delete compiled entries (all, or one backend's); they are rebuilt when next needed."""
    root = default_cache_dir()
    if backend is not None:
        valid = _valid_names(root)
        if backend not in valid:
            what = "unknown backend" if is_backend_name(backend) else "not a backend name"
            raise fail(
                f"{what} {backend!r}; -b takes one of: {', '.join(sorted(valid)) or '(none)'}",
                EXIT_USAGE,
            )
    removed = freed = 0
    for entry in _entries(root):
        if backend is None or _backend_of(entry) == backend:
            freed += _remove(root, entry)
            removed += 1
    engines = root / "engines"
    # Staging directories (tmp/) and lock files stay: a build may be running in another process.
    # int8 range caches (calibration/), stored fastest choices (choices/) and verified stamps
    # (verified/) are shared by every backend: cleared with everything.
    shared = [engines, root / "calibration", root / "choices", root / "verified"]
    for extra in [engines / backend] if backend else shared:
        if os.path.lexists(extra):
            freed += _remove(root, extra)
    which = f"{backend} " if backend else ""
    console.print(
        f"removed {removed} {which}entr{'y' if removed == 1 else 'ies'} "
        f"({human_bytes(freed)}) from {escape(str(root))}"
    )
