"""``unirun run``: load a model or artifact, feed it files or random inputs, show the outputs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.table import Table

from ..api import load
from ..tensor import random_feeds
from ._app import app, console, parse_shapes


def read_inputs(values: list[str]) -> dict[str, np.ndarray[Any, Any]]:
    """``name=file.npy`` pairs, or ``file.npz`` holding arrays named after the inputs."""
    feeds: dict[str, np.ndarray[Any, Any]] = {}
    for value in values:
        name, sep, file = value.partition("=")
        path = Path(file if sep else value)
        try:
            if path.suffix == ".npz":
                with np.load(path, allow_pickle=False) as archive:
                    if sep:
                        raise typer.BadParameter(
                            f"{value!r}: give an .npz file without NAME=", param_hint="--input"
                        )
                    feeds.update({k: archive[k] for k in archive.files})
            elif sep:
                feeds[name] = np.load(path, allow_pickle=False)
            else:
                raise typer.BadParameter(
                    f"{value!r}: write NAME=FILE.npy or FILE.npz", param_hint="--input"
                )
        except (OSError, ValueError) as exc:
            if isinstance(exc, typer.BadParameter):
                raise
            raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint="--input") from exc
    return feeds


def _summary(array: np.ndarray[Any, Any]) -> tuple[str, str, str]:
    if array.size == 0:
        return "-", "-", "[]"
    flat = array.reshape(-1)
    head = np.array2string(flat[:4], precision=4, separator=", ", threshold=8)
    if array.dtype.kind in "fciub" and array.dtype.kind != "b":
        values = flat.astype(np.float64)
        return f"{values.min():.4g}", f"{values.max():.4g}", head
    return "-", "-", head


@app.command()
def run(
    model: Path = typer.Argument(..., help="An .onnx file or a saved artifact directory."),
    inputs: list[str] = typer.Option(
        [], "--input", "-i", help="NAME=FILE.npy or FILE.npz; inputs not given are random."
    ),
    backend: str = typer.Option("auto", "--backend", "-b", help="Backend name, or auto."),
    device: str = typer.Option("auto", "--device", "-d", help="cpu, cuda:0, gpu, npu, auto…"),
    precision: str = typer.Option("fp32", "--precision", "-p", help="fp32, fp16 or bf16."),
    shapes: list[str] = typer.Option(
        [], "--shape", help="NAME=1x3x224x224 or NAME=MIN:OPT:MAX (each like 1x3x224x224)."
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="Save outputs to this .npz."),
    seed: int = typer.Option(0, help="Seed for random inputs."),
) -> None:
    """Run MODEL once and print each output's name, dtype, shape and a short summary."""
    feeds = read_inputs(inputs)
    kwargs: dict[str, Any] = {}
    if not model.is_dir():
        kwargs = {"precision": precision, "shapes": parse_shapes(shapes) or None}
    with load(model, backend=backend, device=device, **kwargs) as m:
        missing = [s for s in m.inputs if s.name not in feeds]
        generated = random_feeds(missing, m.options.shapes, seed=seed) if missing else {}
        feeds.update(generated)
        m.infer(feeds)  # warm-up, so the time shown is a steady-state run
        start = time.perf_counter()
        results = m.infer(feeds)
        elapsed = time.perf_counter() - start
        info = f"[bold]{m.backend}[/] on [bold]{m.device}[/] · cache {m.cache_status}"
        console.print(f"{info} · {elapsed * 1e3:.2f} ms per run")
        if generated:
            console.print(
                "random inputs: "
                + ", ".join(f"{k} {v.dtype}{list(v.shape)}" for k, v in generated.items())
            )
    table = Table(title_justify="left")
    for col in ("output", "dtype", "shape", "min", "max", "first values"):
        table.add_column(col)
    for name, value in results.items():
        low, high, head = _summary(value)
        table.add_row(name, str(value.dtype), str(list(value.shape)), low, high, head)
    console.print(table)
    if output is not None:
        np.savez(output, **results)  # type: ignore[arg-type]
        console.print(f"saved outputs to {output}")
