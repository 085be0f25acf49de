"""The ``unirun`` command line. Each command lives in its own module and registers on ``app``;
heavy or optional imports (matplotlib) happen inside the command that needs them.

A command's module is imported only when that command runs (``_lazy.COMMANDS`` lists them for
``unirun --help``); ``unirun.cli.app`` is the application with every command registered."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._app import main

if TYPE_CHECKING:
    from ._app import app


if not TYPE_CHECKING:  # type checkers see the import above

    def __getattr__(name: str) -> Any:
        if name == "app":
            from . import _app, _lazy

            _lazy.load_commands()
            return _app.app
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["app", "main"]
