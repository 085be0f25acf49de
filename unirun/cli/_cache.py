"""``unirun cache info|clear``: where the compile cache is, what it holds, and emptying it."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from ..artifact import MANIFEST_NAME
from ..cache import default_cache_dir
from ._app import app, console, escape, human_bytes, write_json

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
        data = json.loads((entry / MANIFEST_NAME).read_text(encoding="utf-8"))
        return str(data["backend"])
    except (OSError, ValueError, KeyError, TypeError):
        return "?"


def _entries(root: Path) -> list[Path]:
    artifacts = root / "artifacts"
    return sorted(p for p in artifacts.iterdir() if p.is_dir()) if artifacts.is_dir() else []


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
    removed = freed = 0
    for entry in _entries(root):
        if backend is None or _backend_of(entry) == backend:
            freed += _size(entry)
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    engines = root / "engines"
    # Staging directories (tmp/) and lock files stay: a build may be running in another process.
    for extra in [engines / backend] if backend else [engines]:
        if extra.is_dir():
            freed += _size(extra)
            shutil.rmtree(extra, ignore_errors=True)
    which = f"{backend} " if backend else ""
    console.print(
        f"removed {removed} {which}entr{'y' if removed == 1 else 'ies'} "
        f"({human_bytes(freed)}) from {escape(str(root))}"
    )
