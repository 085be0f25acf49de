"""The ``unirun`` command line. Each command lives in its own module and registers on ``app``."""

from __future__ import annotations

from . import _backends, _run  # noqa: F401  (registers the commands)
from ._app import app, main

__all__ = ["app", "main"]
