"""``unirun run``: load a model or artifact, feed it files or random inputs, show the outputs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.table import Table

from ..api import load
from ..model import Model
from ..tensor import random_feeds
from ._app import (
    app,
    check_device,
    check_precision,
    console,
    escape,
    parse_shapes,
    spinner,
    write_json,
)


def read_inputs(values: list[str]) -> dict[str, np.ndarray[Any, Any]]:
    """``name=file.npy`` pairs, or ``file.npz`` holding arrays named after the inputs."""
    feeds: dict[str, np.ndarray[Any, Any]] = {}
    for value in values:
        name, sep, file = value.partition("=")
        path = Path(file if sep else value)
        if path.suffix == ".npz" and sep:
            raise typer.BadParameter(
                f"{value!r}: give an .npz file without NAME=", param_hint="--input"
            )
        if path.suffix != ".npz" and not sep:
            raise typer.BadParameter(
                f"{value!r}: write NAME=FILE.npy or FILE.npz", param_hint="--input"
            )
        try:
            if sep:
                feeds[name] = np.load(path, allow_pickle=False)
            else:
                with np.load(path, allow_pickle=False) as archive:
                    feeds.update({k: archive[k] for k in archive.files})
        except (OSError, ValueError) as exc:
            raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint="--input") from exc
    return feeds


def complete_feeds(
    model: Model, feeds: dict[str, np.ndarray[Any, Any]], seed: int
) -> dict[str, np.ndarray[Any, Any]]:
    """Random arrays for the inputs ``feeds`` lacks; returns only what it generated."""
    missing = [s for s in model.inputs if s.name not in feeds]
    generated = random_feeds(missing, model.options.shapes, seed=seed) if missing else {}
    feeds.update(generated)
    return generated


def _summary(array: np.ndarray[Any, Any]) -> tuple[str, str, str]:
    if array.size == 0:
        return "-", "-", "[]"
    flat = array.reshape(-1)
    head = np.array2string(flat[:4], precision=4, separator=", ", threshold=8)
    if array.dtype.kind in "fiu":
        values = flat.astype(np.float64)
        return f"{values.min():.4g}", f"{values.max():.4g}", head
    return "-", "-", head


@app.command()
def run(
    model: Path = typer.Argument(
        ..., exists=True, help="An .onnx file or a saved artifact directory."
    ),
    inputs: list[str] = typer.Option(
        [], "--input", "-i", help="NAME=FILE.npy or FILE.npz; inputs not given are random."
    ),
    backend: str = typer.Option("auto", "--backend", "-b", help="Backend name, or auto."),
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
    shapes: list[str] = typer.Option(
        [], "--shape", help="NAME=1x3x224x224 or NAME=MIN:OPT:MAX; not for artifacts."
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="Save outputs to this .npz."),
    seed: int = typer.Option(0, "--seed", help="Seed for random inputs."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary instead of tables."),
) -> None:
    """Run MODEL once and print each output's name, dtype, shape and a short summary."""
    feeds = read_inputs(inputs)
    kwargs: dict[str, Any] = {}
    if model.is_dir():
        if precision is not None or shapes:
            raise typer.BadParameter(
                "an artifact's precision and shapes are fixed when it is compiled",
                param_hint="--precision/--shape",
            )
    else:
        kwargs = {"precision": precision or "fp32", "shapes": parse_shapes(shapes) or None}
    with spinner(f"loading {escape(model.name)}…"):
        m = load(model, backend=backend, device=device, **kwargs)
    with m:
        generated = complete_feeds(m, feeds, seed)
        m.infer(feeds)  # warm-up, so the time shown is a steady-state run
        times: list[float] = []
        deadline = time.perf_counter() + 0.5
        while not times or (len(times) < 5 and time.perf_counter() < deadline):
            start = time.perf_counter()
            results = m.infer(feeds)
            times.append(time.perf_counter() - start)
        elapsed = sorted(times)[len(times) // 2]  # the median of up to five runs
    if output is not None:
        np.savez(output, **results)  # type: ignore[arg-type]
    if as_json:
        write_json(
            {
                "backend": m.backend,
                "device": str(m.device),
                "cache": m.cache_status,
                "ms": round(elapsed * 1e3, 4),
                "random_inputs": sorted(generated),
                "outputs": [
                    {"name": k, "dtype": str(v.dtype), "shape": list(v.shape)}
                    for k, v in results.items()
                ],
                "saved": str(output) if output is not None else None,
            }
        )
        return
    console.print(
        f"[bold]{m.backend}[/] on [bold]{m.device}[/] · cache {m.cache_status} · "
        f"{elapsed * 1e3:.2f} ms per run"
    )
    if generated:
        console.print(
            "random inputs: "
            + ", ".join(escape(f"{k} {v.dtype}{list(v.shape)}") for k, v in generated.items())
        )
    table = Table(title_justify="left")
    for col in ("output", "dtype", "shape", "min", "max", "first values"):
        table.add_column(col)
    for name, value in results.items():
        low, high, head = _summary(value)
        table.add_row(
            escape(name), str(value.dtype), str(list(value.shape)), low, high, escape(head)
        )
    console.print(table)
    if output is not None:
        console.print(f"saved outputs to {escape(str(output))}")
