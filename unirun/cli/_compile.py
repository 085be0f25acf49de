"""``unirun compile``: build an artifact for one backend and device, and save it."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from ..api import compile as compile_model
from ..artifact import check_destination
from ..errors import ArtifactError
from ._app import (
    STRICT_HELP,
    app,
    check_device,
    check_precision,
    console,
    escape,
    fail,
    human_bytes,
    parse_options,
    precision_label,
    spinner,
    write_json,
)
from ._inputs import parse_shapes


@app.command("compile")
def compile_command(
    model: Path = typer.Argument(..., exists=True, dir_okay=False, help="The .onnx model."),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Directory to write the artifact to (e.g. model.ov.unirun)."
    ),
    backend: str = typer.Option("auto", "--backend", "-b", help="Backend name, or auto."),
    device: str = typer.Option(
        "auto", "--device", "-d", callback=check_device, help="cpu, cuda:0, gpu, npu, ane, auto…"
    ),
    precision: str = typer.Option(
        "fp32", "--precision", "-p", callback=check_precision, help="fp32, fp16, bf16 or int8."
    ),
    calibration: Path | None = typer.Option(
        None, "--calibration", file_okay=False, help="Directory of .npy/.npz samples (-p int8)."
    ),
    strict_precision: bool = typer.Option(False, "--strict-precision", help=STRICT_HELP),
    shapes: list[str] = typer.Option(
        [], "--shape", help="NAME=1x3x224x224 (fixed) or NAME=MIN:OPT:MAX, each like 1x3x224x224."
    ),
    threads: int | None = typer.Option(None, "--threads", min=1, help="Threads per inference."),
    optimization_level: int | None = typer.Option(
        None, "--opt-level", min=0, max=3, help="Graph optimisation: 0 none … 3 all."
    ),
    options: list[str] = typer.Option(
        [], "--option", "-O", help="Backend option KEY=VALUE (VALUE read as JSON if it parses)."
    ),
    force: bool = typer.Option(False, "--force", "-f", help="Replace an existing artifact."),
    parents: bool = typer.Option(
        False, "--parents", help="Create OUTPUT's missing parent folders too."
    ),
    no_cache: bool = typer.Option(
        False, "--no-cache", help="Build afresh instead of through the compile cache."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a summary."),
) -> None:
    """Compile MODEL for a backend and device and save the artifact directory to OUTPUT.

    Load it later with `unirun run OUTPUT` or `unirun.load("OUTPUT")`: backend, device and
    options then come from its manifest.
    """
    try:
        check_destination(output, overwrite=force, parents=parents)
    except ArtifactError as exc:
        raise fail(str(exc)) from None
    parsed_shapes = parse_shapes(shapes)
    parsed_options = parse_options(options)
    started = time.perf_counter()
    with spinner(f"compiling {escape(model.name)} for {escape(backend)} on {escape(device)}…"):
        artifact = compile_model(
            model,
            backend=backend,
            device=device,
            precision=precision,
            shapes=parsed_shapes or None,
            options=parsed_options or None,
            threads=threads,
            optimization_level=optimization_level,
            cache=not no_cache,
            calibration=calibration,
            strict_precision=strict_precision,
        )
        saved = artifact.save(output, overwrite=force, parents=parents)
    seconds = time.perf_counter() - started
    m = artifact.manifest
    size = sum(f.size for f in m.files)
    computed = m.computed_precision or m.options.precision
    if as_json:
        write_json(
            {
                "artifact": str(saved),
                "backend": m.backend,
                "device": m.device,
                "precision": computed,
                "requested_precision": m.options.precision,
                "files": [f.path for f in m.files],
                "bytes": size,
                "sha256": artifact.sha256,
                "seconds": round(seconds, 3),
                "quantization": m.extra.get("quantization"),
            }
        )
        return
    console.print(
        f"compiled [bold]{escape(model.name)}[/] with [bold]{escape(m.backend)}[/] for "
        f"[bold]{escape(m.device)}[/] ({escape(precision_label(computed, m.options.precision))}) "
        f"in {seconds:.2f} s → "
        f"{escape(str(saved))} ({len(m.files)} file(s), {human_bytes(size)})"
    )
    console.print(f"sha256 {artifact.sha256} (pin it: unirun.load(path, expect_sha256=...))")
    from ..quantize import summary

    if (line := summary(m)) is not None:
        console.print(escape(line))
    console.print(f"run it: unirun run {escape(str(saved))}")
