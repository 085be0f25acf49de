"""``unirun bench``: latency percentiles and throughput of one model on several backends."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .. import _registry
from .._timing import time_calls
from ..api import load
from ..errors import UnirunError
from ..inputs import InputPlan, run_first
from ..model import Model
from ._app import (
    EXIT_ERROR,
    STRICT_HELP,
    app,
    check_device,
    check_precision,
    console,
    err_console,
    escape,
    precision_label,
    spinner,
    split_names,
    write_json,
)
from ._inputs import check_output, fastest_sample, onnx_graph, parse_shapes, plan_for, read_inputs
from ._run import INPUT_HELP, SHAPE_HELP


def default_backends() -> list[str]:
    """Every available backend but ``reference`` (exact, but far too slow to be worth timing)."""
    return [i.name for i in _registry.backends() if i.available and i.name != "reference"]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )


def _measure(
    model: Model,
    feeds: dict[str, Any],
    warmup: int,
    runs: int,
    duration: float | None,
    concurrency: int,
) -> dict[str, Any]:
    label = f"{model.backend} on {model.device_label}"
    with _progress() as progress:
        task = progress.add_task(label, total=None if duration is not None else runs)
        timing = time_calls(
            lambda: model.infer(feeds),
            warmup=warmup,
            runs=None if duration is not None else runs,
            budget=duration,
            tick=lambda: progress.advance(task),
        )
        wall = timing.total
        if concurrency > 1:  # throughput with several requests in flight
            count = timing.runs
            task = progress.add_task(f"{label}, {concurrency} in flight", total=count)
            start = time.perf_counter()
            for _ in model.map(itertools.repeat(feeds, count), in_flight=concurrency):
                progress.advance(task)
            wall = time.perf_counter() - start
    ms = np.asarray(timing.seconds) * 1e3
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {
        "runs": timing.runs,
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "mean_ms": float(ms.mean()),
        "min_ms": float(ms.min()),
        "throughput_per_s": timing.runs / wall if wall > 0 else float("inf"),
        "concurrency": concurrency,
        "latencies_ms": ms.tolist(),
    }


@app.command()
def bench(
    model: Path = typer.Argument(
        ..., exists=True, help="An .onnx file or a saved artifact directory."
    ),
    backends: str | None = typer.Option(
        None,
        "--backends",
        "-b",
        help="Comma-separated backends, e.g. onnxruntime,openvino (default: every available "
        "one but reference).",
    ),
    device: str = typer.Option(
        "auto", "--device", "-d", callback=check_device, help="cpu, cuda:0, gpu, npu, ane, auto…"
    ),
    precision: str = typer.Option(
        "fp32", "--precision", "-p", callback=check_precision, help="fp32, fp16 or bf16."
    ),
    strict_precision: bool = typer.Option(False, "--strict-precision", help=STRICT_HELP),
    shapes: list[str] = typer.Option([], "--shape", help=SHAPE_HELP),
    inputs: list[str] = typer.Option([], "--input", "-i", help=INPUT_HELP),
    threads: int | None = typer.Option(None, "--threads", min=1, help="Threads per inference."),
    warmup: int = typer.Option(10, "--warmup", min=0, help="Untimed runs first."),
    runs: int = typer.Option(100, "--runs", "-n", min=1, help="Timed runs per backend."),
    duration: float | None = typer.Option(
        None, "--duration", min=0.0, help="Time each backend for this many seconds instead."
    ),
    concurrency: int = typer.Option(
        1,
        "--concurrency",
        "-c",
        min=1,
        help="Also measure throughput with this many requests in flight.",
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed for invented inputs."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    plot: Path | None = typer.Option(
        None, "--plot", help="Also draw the results to this .png (needs matplotlib)."
    ),
) -> None:
    """Time MODEL on each backend: warm-up, then latency p50/p90/p99 and throughput.

    Every backend gets the same inputs. A backend that fails is reported and the others still
    run; the exit code is then 1.
    """
    names = split_names(backends) if backends else default_backends()
    if not names:
        raise typer.BadParameter("no backend is available; see `unirun backends`")
    check_output(plot, "--plot")
    if plot is not None:
        from ._plot import require_matplotlib

        require_matplotlib()
    given = read_inputs(inputs)
    parsed_shapes = parse_shapes(shapes)
    graph = onnx_graph(model)
    kwargs: dict[str, Any] = {"strict_precision": strict_precision}
    if not model.is_dir():
        kwargs.update(precision=precision, shapes=parsed_shapes or None, threads=threads)
    rows: dict[str, dict[str, Any]] = {}
    plan: InputPlan | None = None
    queue = list(names)
    while queue:
        name = queue.pop(0)
        row: dict[str, Any] = {"backend": name}
        rows[name] = row
        try:
            started = time.perf_counter()
            extra: dict[str, Any] = {}
            if name.lower() == "fastest":
                extra["sample"] = fastest_sample(graph, given)
            with spinner(f"compiling and loading {escape(model.name)} on {escape(name)}…"):
                m = load(model, backend=name, device=device, **kwargs, **extra)
            row.update(
                device=m.device_label,
                precision=m.precision,
                requested_precision=m.options.precision,
                cache=m.cache_status,
                load_s=time.perf_counter() - started,
            )
            with m:
                if plan is None:
                    plan = plan_for(m, graph, given, parsed_shapes if model.is_dir() else {}, seed)
                attempt = plan.attempt
                try:
                    run_first(m, plan)
                except UnirunError:
                    plan.set_attempt(attempt)
                    raise
                if plan.attempt != attempt:  # larger inputs now: time the others on them too
                    for done, other in rows.items():
                        if done != name and "error" not in other:
                            queue.append(done)
                row.update(_measure(m, plan.feeds(), warmup, runs, duration, concurrency))
        except UnirunError as exc:
            row["error"] = f"{exc} ({type(exc).__name__})"
    results = [rows[name] for name in names]
    if plan is not None and plan.invented:
        for r in results:
            r.setdefault("inputs", plan.describe())
    ok = [r for r in results if "error" not in r]
    if ok:
        best = min(r["p50_ms"] for r in ok)
        for r in ok:
            r["relative"] = r["p50_ms"] / best if best > 0 else 1.0
    if plot is not None:
        from ._plot import bench_chart

        bench_chart(results, plot, f"{model.name} · {precision}")
    if as_json:
        write_json([{k: v for k, v in r.items() if k != "latencies_ms"} for r in results])
    else:
        _print(results, concurrency)
        if plan is not None and plan.invented:
            console.print("[dim]invented inputs: " + escape(plan.describe()) + "[/]")
        if plot is not None:
            console.print(f"chart saved to {escape(str(plot))}")
    if len(ok) < len(results):
        raise typer.Exit(EXIT_ERROR)


def _print(results: list[dict[str, Any]], concurrency: int) -> None:
    ok = [r for r in results if "error" not in r]
    counts = sorted({r["runs"] for r in ok})
    runs = f"{counts[0]} runs each" if len(counts) == 1 else "runs: " + ", ".join(map(str, counts))
    table = Table(title=f"latency in ms ({runs})", title_justify="left", show_edge=False)
    table.add_column("backend", style="bold", no_wrap=True)
    table.add_column("device")
    table.add_column("precision")
    for col in ("p50", "p90", "p99", "mean"):
        table.add_column(col, justify="right", no_wrap=True)
    through = "inf/s" if concurrency == 1 else f"inf/s ×{concurrency}"
    table.add_column(through, justify="right", no_wrap=True)
    table.add_column("vs best", justify="right", no_wrap=True)
    for r in results:
        if "error" in r:
            table.add_row(escape(r["backend"]), "-", "-", "[red]failed[/]", *[""] * 5)
            continue
        best = r["relative"] == 1.0
        table.add_row(
            escape(r["backend"]),
            escape(r["device"]),
            escape(precision_label(r["precision"], r["requested_precision"])),
            f"[green]{r['p50_ms']:.3g}[/]" if best else f"{r['p50_ms']:.3g}",
            f"{r['p90_ms']:.3g}",
            f"{r['p99_ms']:.3g}",
            f"{r['mean_ms']:.3g}",
            f"{r['throughput_per_s']:,.0f}",
            f"{r['relative']:.2f}×",
        )
    console.print(table)
    if ok:
        console.print(
            "[dim]compile + load: "
            + ", ".join(f"{r['backend']} {r['load_s']:.2f} s (cache {r['cache']})" for r in ok)
            + "[/]"
        )
    for r in results:
        if "error" in r:
            console.print(f"[red]{escape(r['backend'])} failed:[/] {escape(r['error'])}")
