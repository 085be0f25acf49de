"""``unirun compare``: run the same inputs through several backends and check they agree.

An element passes when ``|got - want| <= rtol * |want| + atol``; by default ``atol`` is a
fraction of the output's *scale* (its largest finite magnitude in the baseline), and both
follow the precision the backend really computed in (``Model.precision``), not the request.
A backend that fails gets its own row with the error; the others still run (exit 3).

The command and its table are here; running and checking the backends is in
:mod:`unirun.cli._compare_run`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from ..api import load
from ..errors import UnirunError
from ..model import Model
from ._agree import TOLERANCES
from ._app import (
    EXIT_CHECK_FAILED,
    STRICT_HELP,
    app,
    check_device,
    check_precision,
    console,
    escape,
    precision_label,
    spinner,
    split_names,
    write_json,
)
from ._compare_run import run_all
from ._inputs import onnx_graph, parse_shapes, plan_for, read_inputs
from ._run import INPUT_HELP, SHAPE_HELP


def _pick_baseline(names: list[str], baseline: str | None) -> str:
    if baseline is not None:
        if baseline not in names:
            raise typer.BadParameter(
                f"{baseline!r} is not one of the backends given with -b ({', '.join(names)})",
                param_hint="--baseline",
            )
        return baseline
    return "reference" if "reference" in names else names[0]


@app.command()
def compare(
    model: Path = typer.Argument(..., exists=True, dir_okay=False, help="The .onnx model."),
    backends: str = typer.Option(
        "onnxruntime,reference",
        "--backends",
        "-b",
        help="Comma-separated backends, at least two.",
    ),
    baseline: str | None = typer.Option(
        None,
        "--baseline",
        help="The backend the others are checked against (default: reference if listed, "
        "else the first).",
    ),
    device: str = typer.Option(
        "auto",
        "--device",
        "-d",
        callback=check_device,
        help="Device for the backends under test (the baseline uses its default).",
    ),
    precision: str = typer.Option(
        "fp32",
        "--precision",
        "-p",
        callback=check_precision,
        help="Precision requested of the backends under test (the baseline runs fp32).",
    ),
    strict_precision: bool = typer.Option(False, "--strict-precision", help=STRICT_HELP),
    shapes: list[str] = typer.Option([], "--shape", help=SHAPE_HELP),
    inputs: list[str] = typer.Option([], "--input", "-i", help=INPUT_HELP),
    calibration: Path | None = typer.Option(
        None, "--calibration", file_okay=False, help="Directory of .npy/.npz samples (-p int8)."
    ),
    samples: int = typer.Option(1, "--samples", min=1, help="Invented input sets to try."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the first invented input set."),
    rtol: float | None = typer.Option(
        None, "--rtol", min=0.0, help="Relative tolerance instead of the precision's."
    ),
    atol: float | None = typer.Option(
        None, "--atol", min=0.0, help="Absolute tolerance (not scaled) instead of the default."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Run the same inputs through each backend and compare every output with the baseline's.

    Reports the max absolute and relative error and the share of elements out of tolerance
    per output. Tolerances follow the precision each backend really computed in and scale with
    each output's magnitude. A backend that fails is reported in its own row. Exits with 3
    when any output is out of tolerance or any backend failed.
    """
    names = split_names(backends)
    if len(names) < 2:
        raise typer.BadParameter(
            "give at least two backends, e.g. onnxruntime,reference", param_hint="--backends"
        )
    base_name = _pick_baseline(names, baseline)
    given = read_inputs(inputs)
    parsed_shapes = parse_shapes(shapes) or None
    graph = onnx_graph(model)
    models: dict[str, Model] = {}
    errors: dict[str, str] = {}
    try:
        for name in [base_name, *(n for n in names if n != base_name)]:
            is_base = name == base_name
            try:
                with spinner(f"compiling and loading {escape(model.name)} on {escape(name)}…"):
                    models[name] = load(
                        model,
                        backend=name,
                        device="auto" if is_base else device,
                        precision="fp32" if is_base else precision,
                        shapes=parsed_shapes,
                        strict_precision=strict_precision and not is_base,
                        calibration=None if is_base else calibration,
                    )
            except UnirunError as exc:
                errors[name] = f"{exc} ({type(exc).__name__})"
        reports: list[dict[str, Any]] = []
        invented = ""
        if base_name in models:
            plan = plan_for(models[base_name], graph, given, {}, seed)
            invented = plan.describe()
            reports = run_all(models, base_name, plan, samples, seed, rtol, atol, errors, precision)
    finally:
        for m in models.values():
            m.close()
    rows = _rows(names, base_name, models, reports, errors)
    ok = all(r["ok"] for r in rows)
    base = models.get(base_name)
    if as_json:
        write_json(
            {
                "ok": ok,
                "baseline": base_name,
                "baseline_device": base.device_label if base is not None else None,
                "baseline_precision": base.precision if base is not None else None,
                "precision": precision,
                "rtol": rtol,
                "atol": atol,
                "samples": samples,
                "invented": invented,
                "results": rows,
            }
        )
    else:
        _print(rows, base_name, base, precision, samples, ok, rtol, atol)
        if invented:
            console.print(
                f"[dim]invented inputs{' (first set)' if samples > 1 else ''}: "
                f"{escape(invented)}[/]"
            )
        for r in rows:
            if "inputs" in r:
                console.print(
                    f"[dim]{escape(r['backend'])}:{escape(r['output'])} ran on larger "
                    f"invented sizes: {escape(r['inputs'])}[/]"
                )
    if not ok:
        raise typer.Exit(EXIT_CHECK_FAILED)


def _rows(
    names: list[str],
    base_name: str,
    models: dict[str, Model],
    reports: list[dict[str, Any]],
    errors: dict[str, str],
) -> list[dict[str, Any]]:
    """Every backend's rows in the order given: its outputs, or one row with its error."""
    rows: list[dict[str, Any]] = []
    for name in names:
        if name == base_name and name not in errors:
            continue
        m = models.get(name)
        who: dict[str, Any] = {"backend": name}
        if m is not None:
            who.update(
                device=m.device_label,
                precision=m.precision,
                requested_precision=m.options.precision,
            )
        if name in errors:
            role = " (the baseline)" if name == base_name else ""
            rows.append({**who, "ok": False, "error": errors[name] + role})
        elif base_name in errors:
            rows.append({**who, "ok": False, "error": f"not compared: baseline {base_name} failed"})
        else:
            rows.extend({**who, **r} for r in reports if r["backend"] == name)
    return rows


def _fmt(value: float) -> str:
    return "-" if value != value else f"{value:.3g}"  # NaN → "-"


def _print(
    rows: list[dict[str, Any]],
    base_name: str,
    base: Model | None,
    precision: str,
    samples: int,
    ok: bool,
    rtol: float | None,
    atol: float | None,
) -> None:
    where = f" on {escape(base.device_label)} ({base.precision})" if base is not None else ""
    if rtol is None and atol is None:
        rule = (
            "tolerances follow each backend's computed precision "
            f"({precision} tolerances: rtol {TOLERANCES[precision][0]:g}, "
            f"atol {TOLERANCES[precision][1]:g} × the output's largest magnitude)"
        )
    else:
        rule = f"given tolerances: rtol {_fmt(rtol or 0)}, atol {_fmt(atol or 0)}"
    console.print(
        f"baseline [bold]{escape(base_name)}[/]{where} · {rule} · {samples} input "
        f"set{'s' if samples > 1 else ''}"
    )
    from ..quantize import BOUND_TEXT, Meters

    if precision == "int8":
        console.print(BOUND_TEXT)
    table = Table(show_edge=False)
    table.add_column("backend", style="bold", no_wrap=True)
    table.add_column("output", no_wrap=True)
    table.add_column("max abs", justify="right")
    table.add_column("max rel", justify="right")
    table.add_column("out of tolerance", justify="right")
    table.add_column("atol", justify="right")
    table.add_column("cosine", justify="right")
    table.add_column("top-1", justify="right")
    table.add_column("result", no_wrap=True)
    for r in rows:
        who = escape(r["backend"])
        if "device" in r:
            label = precision_label(r["precision"], r["requested_precision"])
            who += f" ({escape(r['device'])}, {escape(label)})"
        if "error" in r:
            table.add_row(who, "-", "-", "-", "-", "-", "-", "-", "[red]ERROR[/] (below)")
            continue
        verdict = "[green]pass[/]" if r["ok"] else "[red]FAIL[/]"
        if "problem" in r:
            verdict += f" ({escape(r['problem'])})"
        table.add_row(
            who,
            escape(r["output"]),
            _fmt(r["max_abs"]),
            _fmt(r["max_rel"]),
            f"{r['mismatched']:,} / {r['total']:,} ({r['fraction']:.2%})",
            _fmt(r["atol"]) if r["tolerance_applies"] else "exact",
            *Meters.cells(r),
            verdict,
        )
    console.print(table)
    for r in rows:
        if "error" in r:
            console.print(f"[red]{escape(r['backend'])} failed:[/] {escape(r['error'])}")
    if ok:
        console.print("[green]PASS[/]: every output is within tolerance")
        return
    failed = [f"{r['backend']}:{r['output']}" for r in rows if not r["ok"] and "output" in r]
    broken = [r["backend"] for r in rows if "error" in r]
    parts = []
    if failed:
        parts.append(f"{len(failed)} output(s) out of tolerance: {', '.join(failed)}")
    if broken:
        parts.append(f"{len(broken)} backend(s) failed: {', '.join(broken)}")
    console.print(f"[red]FAIL[/]: {escape('; '.join(parts))}")
