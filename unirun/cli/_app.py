"""The Typer application, shared option parsing and the one-line error handling."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

import typer
from rich.console import Console

from ..errors import UnirunError

app = typer.Typer(
    name="unirun",
    help="Run ONNX models on any inference engine: ONNX Runtime, OpenVINO, TensorRT, Core ML.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

#: Exit codes (documented in the CLI reference).
EXIT_OK = 0
EXIT_ERROR = 1  # unirun refused or failed: bad model, unknown backend, bad input…
EXIT_USAGE = 2  # the command line itself is wrong (Click's own code)
EXIT_CHECK_FAILED = 3  # a check ran and failed: `compare` over tolerance, `doctor` problems

_state: dict[str, bool] = {"debug": False}


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what unirun does."),
) -> None:
    _state["debug"] = debug
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    return typer.Exit(code)


def parse_shapes(values: Sequence[str]) -> dict[str, Any]:
    """``name=1x3x224x224`` (fixed) or ``name=1x3x224x224:8x3x224x224:32x3x224x224``."""
    shapes: dict[str, Any] = {}
    for value in values:
        name, sep, spec = value.partition("=")
        parts = spec.split(":")
        try:
            dims = [tuple(int(d) for d in part.lower().split("x")) for part in parts]
        except ValueError:
            dims = []
        if not sep or not name or len(dims) not in (1, 3):
            raise typer.BadParameter(
                f"{value!r}: write NAME=1x3x224x224 or NAME=MINxDIMS:OPTxDIMS:MAXxDIMS",
                param_hint="--shape",
            )
        shapes[name] = dims[0] if len(dims) == 1 else tuple(dims)
    return shapes


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point: run the app, turning unirun errors into one clear line."""
    try:
        app(args=list(argv) if argv is not None else None, standalone_mode=False)
    except UnirunError as exc:
        if _state["debug"]:
            raise
        fail(f"{exc} ({type(exc).__name__})")
        return EXIT_ERROR
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        err_console.print("aborted")
        return 130
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        if _state["debug"]:
            raise
        fail(f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)")
        return EXIT_ERROR
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
