"""Commands imported when they run: ``unirun --help`` lists every command from :data:`COMMANDS`
without importing one, and ``unirun NAME`` imports only NAME's module (numpy, pydantic, the
registry and the engines come with the command that needs them)."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from typer.core import TyperCommand, TyperGroup

#: Every command, in help order: the module that registers it on ``app`` and the first paragraph
#: of its help, line breaks included, as ``unirun --help`` shows it. tests/test_startup.py checks
#: both against the commands themselves.
COMMANDS: dict[str, tuple[str, str]] = {
    "backends": (
        "_backends",
        "List backends: availability, engine and plugin versions, devices, or why unavailable.",
    ),
    "doctor": (
        "_doctor",
        "Check this machine: engine libraries, drivers, devices, the cache; say what to fix.",
    ),
    "inspect": ("_inspect", "Describe MODEL and say which available backends can take it."),
    "compile": (
        "_compile",
        "Compile MODEL for a backend and device and save the artifact directory to OUTPUT.",
    ),
    "run": (
        "_run",
        "Run MODEL once and print each output's name, dtype, shape and a short summary.",
    ),
    "bench": (
        "_bench",
        "Time MODEL on each backend: warm-up, then latency p50/p90/p99 and throughput.",
    ),
    "compare": (
        "_compare",
        "Run the same inputs through each backend and compare every output with the baseline's.",
    ),
    "serve": (
        "_serve",
        "Serve MODEL over the Open Inference Protocol v2 (KServe/Triton REST): tritonclient,\n"
        "KServe tooling and curl work unchanged. Stops on Ctrl-C or SIGTERM, letting running\n"
        "requests finish.",
    ),
    "cache": ("_cache", "Show or clear the compile cache ($UNIRUN_CACHE_DIR)."),
    "new-plugin": ("_new", "Create a new backend plugin package from unirun's template."),
}


class Placeholder(TyperCommand):
    """Stands for a command in the root help until the command runs."""


class LazyGroup(TyperGroup):
    """The root group: a placeholder for each command not imported yet, swapped for the real
    command when the command line names it."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        real = dict(self.commands)
        commands = {
            name: real[name] if name in real else Placeholder(name, help=summary)
            for name, (_, summary) in COMMANDS.items()
        }
        # Commands registered outside the table (an application's own) keep working.
        self.commands = commands | {n: c for n, c in real.items() if n not in commands}

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and isinstance(self.commands.get(args[0]), Placeholder):
            self.commands[args[0]] = real_command(args[0])
        return super().resolve_command(ctx, args)


def real_command(name: str) -> Any:
    """Import the module of command ``name`` and return its Click command."""
    from typer.main import get_group

    from ._app import app

    importlib.import_module(f"{__package__}.{COMMANDS[name][0]}")
    return get_group(app).commands[name]


def load_commands(names: Sequence[str] = tuple(COMMANDS)) -> None:
    """Import the modules of ``names`` (every command by default), registering them on ``app``."""
    for name in names:
        importlib.import_module(f"{__package__}.{COMMANDS[name][0]}")
