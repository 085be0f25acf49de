"""Calls into a plugin: engine exceptions mapped once, here, and long engine messages trimmed."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .backend import Stage, SupportsErrorMapping
from .errors import ArtifactError, CompileError, InferenceError, UnirunError

__all__ = ["MESSAGE_LIMIT", "map_engine_error", "plugin_call", "trim"]

#: Engine messages longer than this are cut (a pybind dump or a whole graph can be megabytes).
MESSAGE_LIMIT = 600

log = logging.getLogger("unirun")

_DEFAULTS: dict[str, tuple[type[UnirunError], str]] = {
    "compile": (CompileError, "failed to compile the model"),
    "load": (ArtifactError, "failed to load the artifact"),
    "run": (InferenceError, "failed while running"),
}


def trim(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` cut to ``limit`` characters (an ellipsis marks the cut)."""
    text = text.strip()
    return text if len(text) <= limit else text[:limit].rstrip() + " …"


def map_engine_error(name: str, backend: Any, stage: Stage, exc: BaseException) -> UnirunError:
    """The unirun error for ``exc``, raised by backend ``name`` during ``stage``: the plugin's
    ``map_error`` decides where it has one, else the stage's default type. Never raises."""
    if isinstance(exc, UnirunError):
        _trim_in_place(exc)
        return exc
    mapped: UnirunError | None = None
    if isinstance(backend, SupportsErrorMapping):
        try:
            mapped = backend.map_error(exc, stage)
        except Exception as bug:  # a mapper that raises must not hide the engine's error
            mapped = None
            log.warning("the %s plugin's map_error raised %s: %s", name, type(bug).__name__, bug)
    if not isinstance(mapped, UnirunError):
        kind, verb = _DEFAULTS[stage]
        mapped = kind(f"backend {name!r} {verb}: {type(exc).__name__}: {exc}")
    _trim_in_place(mapped)
    mapped.__cause__ = exc
    return mapped


@contextmanager
def plugin_call(name: str, backend: Any, stage: Stage) -> Iterator[None]:
    """Run a call into the plugin; anything it raises leaves as a (trimmed) unirun error."""
    try:
        yield
    except Exception as exc:
        error = map_engine_error(name, backend, stage, exc)
        if error is exc:
            raise
        raise error from exc


def _trim_in_place(error: UnirunError) -> None:
    if error.args and isinstance(error.args[0], str) and len(error.args[0]) > MESSAGE_LIMIT:
        error.args = (trim(error.args[0]), *error.args[1:])
