"""``unirun run``: load a model or artifact, feed it files, values or invented inputs, show the
outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.table import Table

from .._timing import time_calls
from ..api import load
from ..inputs import run_first
from ..values import ValueType
from ._app import (
    STRICT_HELP,
    app,
    check_device,
    check_precision,
    console,
    escape,
    precision_label,
    spinner,
    write_json,
)
from ._inputs import (
    check_output,
    fastest_sample,
    onnx_graph,
    parse_shapes,
    plan_for,
    read_inputs,
)
from ._values import flatten, short, to_npz

INPUT_HELP = (
    "NAME=FILE.npy, NAME=VALUE (a number or JSON list, e.g. sr=16000) or FILE.npz; inputs not "
    "given are invented."
)
SHAPE_HELP = (
    "NAME=1x3x224x224 or NAME=MIN:OPT:MAX: compiles for it (invented inputs use OPT); for an "
    "artifact, only the size of invented inputs."
)


def _summary(array: np.ndarray[Any, Any]) -> tuple[str, str, str]:
    if array.size == 0:
        return "-", "-", "[]"
    flat = array.reshape(-1)
    head = np.array2string(flat[:4], precision=4, separator=", ", threshold=8)
    if array.dtype.kind in "fiu":
        values = flat.astype(np.float64)
        return f"{values.min():.4g}", f"{values.max():.4g}", head
    return "-", "-", head


def _row(value: Any, kind: ValueType | None) -> tuple[str, str, str, str, str]:
    """(dtype, shape, min, max, first values) of one output, tensor or not."""
    if kind is None and isinstance(value, np.ndarray):
        return (str(value.dtype), str(list(value.shape)), *_summary(value))
    _, numbers = flatten(value, kind)
    low, high, _ = _summary(numbers)
    if value is None:
        size = "absent"
    elif isinstance(value, (list, tuple)):
        size = f"{len(value)} item{'' if len(value) == 1 else 's'}"
    elif isinstance(value, dict):
        size = f"{len(value)} key{'' if len(value) == 1 else 's'}"
    else:
        size = str(list(np.shape(value)))
    first = value[0] if isinstance(value, (list, tuple)) and value else value
    return str(kind), size, low, high, short(first, 60)


def _json_output(name: str, value: Any, kind: ValueType | None) -> dict[str, Any]:
    if kind is None and isinstance(value, np.ndarray):
        return {"name": name, "dtype": str(value.dtype), "shape": list(value.shape)}
    size = len(value) if isinstance(value, (list, tuple, dict)) else None
    return {"name": name, "type": str(kind), "items": size, "present": value is not None}


@app.command()
def run(
    model: Path = typer.Argument(
        ..., exists=True, help="An .onnx file or a saved artifact directory."
    ),
    inputs: list[str] = typer.Option([], "--input", "-i", help=INPUT_HELP),
    backend: str = typer.Option("auto", "--backend", "-b", help="Backend name, auto or fastest."),
    device: str = typer.Option(
        "auto", "--device", "-d", callback=check_device, help="cpu, cuda:0, gpu, npu, ane, auto…"
    ),
    precision: str | None = typer.Option(
        None,
        "--precision",
        "-p",
        callback=lambda v: check_precision(v) if v is not None else None,
        help="fp32 (default), fp16 or bf16; not for artifacts.",
    ),
    strict_precision: bool = typer.Option(False, "--strict-precision", help=STRICT_HELP),
    shapes: list[str] = typer.Option([], "--shape", help=SHAPE_HELP),
    output: Path | None = typer.Option(None, "--output", "-o", help="Save outputs to this .npz."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed for invented inputs."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary instead of tables."),
) -> None:
    """Run MODEL once and print each output's name, dtype, shape and a short summary."""
    check_output(output)
    given = read_inputs(inputs)
    parsed_shapes = parse_shapes(shapes)
    kwargs: dict[str, Any] = {"strict_precision": strict_precision}
    if model.is_dir():
        if precision is not None:
            raise typer.BadParameter(
                "an artifact's precision is fixed when it is compiled", param_hint="--precision"
            )
    else:
        kwargs.update(precision=precision or "fp32", shapes=parsed_shapes or None)
    graph = onnx_graph(model)
    if backend.lower() == "fastest":
        kwargs["sample"] = fastest_sample(graph, given)
    with spinner(f"loading {escape(model.name)}…"):
        m = load(model, backend=backend, device=device, **kwargs)
    with m:
        plan = plan_for(m, graph, given, parsed_shapes if model.is_dir() else {}, seed)
        results = run_first(m, plan)  # also the warm-up, so the time shown is a steady state
        feeds = plan.feeds()
        elapsed = time_calls(lambda: m.infer(feeds), budget=0.5, max_runs=5).median
    kinds = {spec.name: spec.kind for spec in m.outputs}
    if output is not None:
        arrays: dict[str, Any] = {}
        for name, value in results.items():
            arrays.update(to_npz(name, value) if kinds.get(name) is not None else {name: value})
        np.savez(output, **arrays)
    selection = getattr(m, "selection", None)
    if as_json:
        write_json(
            {
                "backend": m.backend,
                "device": m.device_label,
                "precision": m.precision,
                "requested_precision": m.options.precision,
                "cache": m.cache_status,
                "ms": round(elapsed * 1e3, 4),
                "random_inputs": sorted(plan.invented),
                "invented": [
                    {"name": k, "dtype": str(v.dtype), "shape": list(v.shape), "how": v.how}
                    for k, v in plan.invented.items()
                ],
                "selection": str(selection) if selection is not None else None,
                "outputs": [_json_output(k, v, kinds.get(k)) for k, v in results.items()],
                "saved": str(output) if output is not None else None,
            }
        )
        return
    console.print(
        f"[bold]{escape(m.backend)}[/] on [bold]{escape(m.device_label)}[/] · "
        f"{escape(precision_label(m.precision, m.options.precision))} · cache {m.cache_status} · "
        f"{elapsed * 1e3:.2f} ms per run"
    )
    if selection is not None:
        console.print(f"fastest: {escape(str(selection))}")
    if plan.invented:
        console.print("invented inputs: " + escape(plan.describe()))
    table = Table(title_justify="left")
    for col in ("output", "dtype", "shape", "min", "max", "first values"):
        table.add_column(col)
    for name, value in results.items():
        dtype, shape, low, high, head = _row(value, kinds.get(name))
        table.add_row(escape(name), escape(dtype), shape, low, high, escape(head))
    console.print(table)
    if output is not None:
        console.print(f"saved outputs to {escape(str(output))}")
