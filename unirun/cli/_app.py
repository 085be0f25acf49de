"""The Typer application, shared option parsing and the one-line error handling."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape as escape_markup

from .._version import __version__
from ..device import Device
from ..errors import UnirunError
from ._lazy import LazyGroup

app = typer.Typer(
    name="unirun",
    cls=LazyGroup,  # imports a command's module only when it runs
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

PRECISIONS = ("fp32", "fp16", "bf16", "int8")

_state: dict[str, bool] = {"debug": False}


def _version(value: bool) -> None:
    if value:
        console.print(f"unirun {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what unirun does."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    _state["debug"] = debug
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


# C0 and C1 controls, DEL, and the Unicode marks that reorder or break lines: a model's names
# could otherwise retitle or clear the terminal, or print lines that look like unirun's own.
_CONTROLS = {
    code: (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    for code in (
        *range(0x20),
        *range(0x7F, 0xA0),
        0x061C,
        0x200E,
        0x200F,
        *range(0x2028, 0x202F),
        *range(0x2066, 0x206A),
    )
}
_CONTROLS.update({ord("\t"): "\\t", ord("\n"): "\\n", ord("\r"): "\\r"})


def escape(text: object) -> str:
    """``text`` made safe to print: control characters shown as ``\\x1b``-style escapes, and
    rich markup escaped. Every string the CLI prints that it did not write itself (names,
    producer strings and node names from a model or manifest, paths, engine messages) goes
    through this."""
    return escape_markup(str(text).translate(_CONTROLS))


def fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    """Print ``message`` as one error line; return the ``Exit`` for the caller to raise."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)


def write_json(data: Any) -> None:
    """Machine-readable output: plain JSON on stdout, never wrapped or coloured."""
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    sys.stdout.flush()


@contextmanager
def spinner(message: str) -> Iterator[None]:
    """A transient spinner on stderr while something slow (a compile) runs; silent when piped."""
    with err_console.status(message, spinner="dots"):
        yield


# -- option values ----------------------------------------------------------------------------


def check_device(value: str) -> str:
    try:
        Device.parse(value)
    except UnirunError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


def check_precision(value: str) -> str:
    if value not in PRECISIONS:
        raise typer.BadParameter(f"{value!r}: choose one of {', '.join(PRECISIONS)}")
    return value


def split_names(value: str, param: str = "--backends") -> list[str]:
    """``"a,b"`` → ``["a", "b"]`` (no empty or repeated names)."""
    names = [n.strip() for n in value.split(",") if n.strip()]
    if len(set(names)) != len(names):
        raise typer.BadParameter(f"{value!r} names a backend twice", param_hint=param)
    return names


def parse_options(values: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` backend options; VALUE is read as JSON (``4``, ``true``, ``{"a": 1}``) and
    otherwise kept as a string."""
    options: dict[str, Any] = {}
    for value in values:
        key, sep, raw = value.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{value!r}: write KEY=VALUE", param_hint="--option")
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw
    return options


def precision_label(computed: str, requested: str) -> str:
    """The precision the engine computes in, and the request when the hardware changed it."""
    return computed if computed == requested else f"{requested} requested → {computed}"


STRICT_HELP = "Fail (exit 1) instead of warning when the device cannot compute in --precision."


def human_bytes(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


# -- entry point ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point: run the app, turning unirun errors into one clear line."""
    _state["debug"] = False
    try:
        # Outside standalone mode a command's ``typer.Exit(code)`` comes back as the return value.
        result = app(
            args=list(argv) if argv is not None else None,
            prog_name="unirun",
            standalone_mode=False,
        )
    except UnirunError as exc:
        if _state["debug"]:
            raise
        fail(f"{exc} ({type(exc).__name__})")
        return EXIT_ERROR
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("interrupted")
        return 130
    except typer.TyperException as exc:  # click's usage errors (typer vendors click)
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            fail(exc.format_message(), EXIT_USAGE)
        return int(getattr(exc, "exit_code", EXIT_USAGE))
    except Exception as exc:
        if _state["debug"]:
            raise
        fail(f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)")
        return EXIT_ERROR
    return result if isinstance(result, int) else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
