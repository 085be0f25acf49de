"""``unirun doctor``: check that what each backend needs is present on this machine."""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from dataclasses import dataclass
from typing import Literal

import typer
from rich.table import Table

from .. import _registry, _select
from .._version import __version__
from ..backend import API_VERSION, SupportsDiagnosis
from ..cache import default_cache_dir
from ..device import Device
from ..errors import UnirunError
from ._app import EXIT_CHECK_FAILED, app, check_device, console, escape, write_json

Status = Literal["ok", "warn", "fail", "info"]
_ICONS = {"ok": "[green]✓[/]", "warn": "[yellow]![/]", "fail": "[red]✗[/]", "info": "[dim]·[/]"}


@dataclass
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


def _system() -> list[Check]:
    return [
        Check("python", "info", f"{platform.python_version()} ({sys.executable})"),
        Check("platform", "info", f"{platform.system()} {platform.release()} {platform.machine()}"),
        Check("unirun", "info", f"{__version__}, plugin contract API {API_VERSION}"),
    ]


def _cache() -> Check:
    root = default_cache_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check(
            "compile cache",
            "fail",
            f"{root} is not writable: {exc.strerror or exc}",
            "set UNIRUN_CACHE_DIR to a writable directory",
        )
    return Check("compile cache", "ok", f"{root} (writable)")


def _backend_checks(
    info: _registry.BackendInfo, device: Device | None, requested: bool
) -> list[Check]:
    name = f"backend {info.name}"
    missing: Status = "fail" if requested else "info"
    if not info.installed:
        return [Check(name, missing, "not installed", info.install)]
    if info.capabilities is None:  # the plugin failed to load or speaks another API
        return [Check(name, "fail" if requested else "warn", info.reason, info.install)]
    version = f"{info.name} {info.version or '?'}, plugin {info.plugin_version or '?'}"
    if not info.available:
        return [Check(name, "fail" if requested else "warn", f"{version}: {info.reason}")]
    devices = ", ".join(
        f"{d.device}" + (f" ({d.description})" if d.description else "") for d in info.devices
    )
    checks = [Check(name, "ok", f"{version}, API {API_VERSION}; devices: {devices or 'none'}")]
    if device is not None and device.kind != "auto":
        checks.append(_device_check(info, device, requested))
    return checks


def _plugin_checks(
    info: _registry.BackendInfo, device: Device | None, requested: bool
) -> list[Check]:
    """What the plugin itself knows to check (drivers, libraries, OS): its ``diagnose()``."""
    if not info.installed:
        return []
    try:  # available or not: unavailable backends are the ones whose diagnosis matters most
        backend = _registry.backend_object(info.name)
    except UnirunError:
        return []
    if not isinstance(backend, SupportsDiagnosis):
        return []
    try:
        findings = list(backend.diagnose(device))
    except Exception as exc:  # the contract says never raises; a doctor must not crash
        return [Check(f"{info.name} diagnosis", "warn", f"diagnose() raised {exc!r}")]
    bad: Status = "fail" if requested else "warn"
    return [
        Check(f.check, "info" if f.ok is None else "ok" if f.ok else bad, f.detail, f.fix)
        for f in findings
    ]


def _device_check(info: _registry.BackendInfo, device: Device, requested: bool) -> Check:
    name = f"{info.name} on {device}"
    caps = info.capabilities
    assert caps is not None
    bad: Status = "fail" if requested else "info"
    if device.kind not in caps.device_kinds:
        return Check(
            name,
            bad,
            f"{info.name} does not drive {device.kind} devices (it drives "
            f"{', '.join(caps.device_kinds)})",
        )
    for found in info.devices:
        if device.matches(found.device):
            return Check(name, "ok", f"{found.device}: {found.description or 'available'}")
    have = ", ".join(str(d.device) for d in info.devices) or "none"
    return Check(name, bad, f"no {device} device is available to {info.name} (found: {have})")


@app.command()
def doctor(
    backend: str | None = typer.Option(
        None, "--backend", "-b", help="Check only this backend, and fail if it cannot run."
    ),
    device: str | None = typer.Option(
        None,
        "--device",
        "-d",
        callback=lambda v: check_device(v) if v is not None else None,
        help="Check this device too (cpu, cuda:0, gpu, npu…), and fail if it is not usable.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a report."),
) -> None:
    """Check this machine: engine libraries, drivers, devices, the cache; say what to fix.

    Exits with 3 when the requested setup cannot work: the backend named with -b is missing or
    unavailable, the device named with -d is not usable by it (or, without -b, by any backend),
    or, with neither, when no backend can run at all.
    """
    wanted = Device.parse(device) if device is not None else None
    infos = _registry.backends()
    if backend is not None and backend not in {i.name for i in infos}:
        known = ", ".join(sorted(i.name for i in infos))
        checks = [Check(f"backend {backend}", "fail", f"unknown backend; known: {known}")]
    else:
        chosen = [i for i in infos if backend is None or i.name == backend]
        checks = [*_system(), _cache()]
        for info in chosen:
            checks += _backend_checks(info, wanted, backend is not None)
            checks += _plugin_checks(info, wanted, backend is not None)
        if backend is None:
            checks.append(_overall(wanted))
    failed = [c for c in checks if c.status == "fail"]
    if as_json:
        write_json(
            {
                "ok": not failed,
                "checks": [
                    {"name": c.name, "status": c.status, "detail": c.detail, "fix": c.fix}
                    for c in checks
                ],
            }
        )
    else:
        _print(checks, failed)
    if failed:
        raise typer.Exit(EXIT_CHECK_FAILED)


def _overall(device: Device | None) -> Check:
    """Without -b: can ``backend="auto"`` run here, and can some backend use the -d device?"""
    if device is not None and device.kind != "auto":
        usable = [
            i.name
            for i in _registry.backends()
            if i.available and any(device.matches(d.device) for d in i.devices)
        ]
        if usable:
            return Check("device", "ok", f"{device} is usable by {', '.join(usable)}")
        return Check("device", "fail", f"no installed backend can use {device}")
    try:
        name, _, info = _select.select("auto", Device("auto"))
    except UnirunError as exc:
        fix = f"install the default backend: {_registry.KNOWN_PLUGINS['onnxruntime']}"
        return Check("selection", "fail", str(exc), fix)
    return Check("selection", "ok", f"backend=auto picks {name} on {info.device}")


def _print(checks: list[Check], failed: list[Check]) -> None:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(no_wrap=True)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for c in checks:
        detail = escape(c.detail)
        if c.fix:
            detail += f"\n  [cyan]fix:[/] {escape(c.fix)}"
        table.add_row(_ICONS[c.status], escape(c.name), detail)
    console.print(table)
    if failed:
        console.print(
            f"[red]{len(failed)} problem{'s' if len(failed) > 1 else ''}[/]: "
            + "; ".join(escape(c.name) for c in failed)
        )
    else:
        console.print("[green]no problems found[/]")
    if os.environ.get("UNIRUN_BACKEND"):
        console.print(f"note: UNIRUN_BACKEND={escape(os.environ['UNIRUN_BACKEND'])} is set")
