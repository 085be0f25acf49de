"""``unirun backends``: what is installed, which version, which devices, and why not."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from .. import _registry
from ._app import app, console


@app.command()
def backends(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List backends: availability, engine and plugin versions, devices, or why unavailable."""
    infos = _registry.backends()
    if as_json:
        data = [
            {
                "name": i.name,
                "available": i.available,
                "installed": i.installed,
                "reason": i.reason,
                "version": i.version,
                "plugin_version": i.plugin_version,
                "devices": [
                    {"device": str(d.device), "description": d.description} for d in i.devices
                ],
                "install": i.install,
            }
            for i in infos
        ]
        console.print_json(json.dumps(data))
        return
    table = Table(title="unirun backends", title_justify="left")
    table.add_column("backend", style="bold")
    table.add_column("status")
    table.add_column("engine")
    table.add_column("plugin")
    table.add_column("devices / reason", overflow="fold")
    for info in infos:
        if info.available:
            status = "[green]available[/]"
            detail = ", ".join(
                f"{d.device}" + (f" ({d.description})" if d.description else "")
                for d in info.devices
            )
        else:
            status = "[yellow]not installed[/]" if not info.installed else "[red]unavailable[/]"
            detail = escape(info.reason) if info.installed else ""
            if info.install:
                detail += ("; " if detail else "") + f"install: [cyan]{escape(info.install)}[/]"
        table.add_row(info.name, status, info.version or "-", info.plugin_version or "-", detail)
    console.print(table)
