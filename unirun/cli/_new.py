"""``unirun new-plugin NAME``: start a backend plugin from the template shipped with unirun."""

from __future__ import annotations

from pathlib import Path

import typer

from ._app import app, console, escape, fail


@app.command("new-plugin")
def new_plugin(
    name: str = typer.Argument(..., help="The backend name users will type, e.g. myengine."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Directory to create (default: ./unirun-NAME)."
    ),
) -> None:
    """Create a new backend plugin package from unirun's template.

    The package installs (pip install -e DIR), registers its entry point and passes the
    conformance kit as a backend that declares itself unavailable, until you wire in an engine:
    see the plugin authoring guide.
    """
    from .._scaffold import new_plugin as scaffold
    from ..errors import UnirunError

    directory = output or Path(f"unirun-{name}")
    try:
        scaffold(name, directory)
    except UnirunError as exc:
        raise fail(str(exc), 2) from None
    console.print(f"created [bold]{escape(str(directory))}[/] for backend [bold]{escape(name)}[/]")
    console.print(
        f"next: pip install -e {escape(str(directory))} && python -m pytest "
        f"{escape(str(directory / 'tests'))}; then wire your engine into "
        f"src/unirun_{escape(name)}/backend.py"
    )
