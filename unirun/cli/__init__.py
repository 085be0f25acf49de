"""The ``unirun`` command line. Each command lives in its own module and registers on ``app``;
heavy or optional imports (matplotlib) happen inside the command that needs them."""

from __future__ import annotations

# Imported for their side effect: each registers its command(s) on ``app``, in help order.
# isort: off
from . import _backends, _doctor, _inspect, _compile, _run, _bench, _compare, _cache, _new  # noqa: F401

# isort: on
from ._app import app, main

__all__ = ["app", "main"]
