"""``unirun backends``: what is installed, which version, which devices, and why not."""

from __future__ import annotations

from typing import Any

import typer
from rich.box import SIMPLE_HEAD
from rich.table import Table

from .. import _registry
from ..backend import API_VERSION
from ._app import app, console, escape, write_json


def describe(info: _registry.BackendInfo) -> dict[str, Any]:
    """One backend as JSON data (shared by ``backends --json`` and ``doctor --json``)."""
    caps = info.capabilities
    return {
        "name": info.name,
        "available": info.available,
        "installed": info.installed,
        "reason": info.reason,
        "version": info.version,
        "plugin_version": info.plugin_version,
        "api_version": API_VERSION if caps is not None else None,
        "devices": [
            {"device": str(d.device), "description": d.description, "identity": d.identity}
            for d in info.devices
        ],
        "device_kinds": list(caps.device_kinds) if caps else [],
        "precisions": list(caps.precisions) if caps else [],
        "install": info.install,
    }


@app.command()
def backends(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List backends: availability, engine and plugin versions, devices, or why unavailable.

    A plugin that loads has passed the contract API check; one that does not is listed with
    the reason and the command that installs or repairs it.
    """
    infos = _registry.backends()
    if as_json:
        write_json([describe(i) for i in infos])
        return
    wide = console.width >= 120  # device descriptions and build strings are long
    table = Table(title="unirun backends", title_justify="left", box=SIMPLE_HEAD)
    table.add_column("backend", style="bold", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("engine", no_wrap=True, overflow="ellipsis", max_width=None if wide else 12)
    table.add_column("plugin")
    table.add_column("api")
    table.add_column("devices / reason", overflow="fold")
    fixes: list[str] = []
    for info in infos:
        if info.available:
            status = "[green]available[/]"
            detail = ", ".join(
                escape(f"{d.device}" + (f" ({d.description})" if d.description and wide else ""))
                for d in info.devices
            )
        else:
            status = "[yellow]not installed[/]" if not info.installed else "[red]unavailable[/]"
            detail = escape(info.reason) if info.installed else ""
            if info.install:
                verb = "install" if not info.installed else "repair"
                fixes.append(f"{verb} {info.name}: [cyan]{escape(info.install)}[/]")
        api = str(API_VERSION) if info.capabilities is not None else "-"
        table.add_row(
            info.name, status, info.version or "-", info.plugin_version or "-", api, detail
        )
    console.print(table)
    for line in fixes:
        console.print(line, soft_wrap=True)
