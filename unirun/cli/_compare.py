"""``unirun compare``: run the same inputs through several backends and check they agree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.table import Table

from ..api import load
from ..dtypes import DType
from ..errors import UnirunError
from ..model import Model
from ._app import (
    EXIT_CHECK_FAILED,
    app,
    check_device,
    check_precision,
    console,
    escape,
    parse_shapes,
    spinner,
    split_names,
    write_json,
)
from ._run import complete_feeds, read_inputs

#: (rtol, atol) per compute precision of the backends under test. fp32 engines differ by
#: summation order and fused kernels; fp16 keeps ~3 decimal digits and bf16 ~2, and the error
#: grows through the layers.
TOLERANCES: dict[str, tuple[float, float]] = {
    "fp32": (1e-4, 1e-5),
    "fp16": (1e-2, 1e-2),
    "bf16": (5e-2, 5e-2),
}

Array = np.ndarray[Any, Any]


def _numeric_float(dtype: np.dtype[Any]) -> bool:
    """Floats and complex numbers, the narrow ``ml_dtypes`` floats (kind ``V``) included."""
    if dtype.kind in "fc":
        return True
    try:
        return DType.from_numpy(dtype).is_float
    except (UnirunError, ValueError, TypeError):
        return False


def compare_arrays(got: Array, want: Array, rtol: float, atol: float) -> dict[str, Any]:
    """How far ``got`` is from ``want``: pass if every element has ``|got - want| <= atol +
    rtol * |want|`` (NaN matches NaN, equal infinities match); non-float outputs must be equal.
    ``max_rel`` is taken over the elements whose baseline magnitude is at least ``atol``."""
    result: dict[str, Any] = {"total": int(want.size), "max_abs": 0.0, "max_rel": 0.0}
    if got.shape != want.shape:
        return {**result, "ok": False, "mismatched": int(want.size), "problem": "shape"}
    if want.size == 0:
        return {**result, "ok": got.dtype == want.dtype, "mismatched": 0}
    if _numeric_float(want.dtype) or _numeric_float(got.dtype):
        a, b = got.astype(np.complex128), want.astype(np.complex128)
        nan_a, nan_b = np.isnan(a), np.isnan(b)
        same = (nan_a & nan_b) | (np.isinf(a) & (a == b))
        with np.errstate(invalid="ignore"):  # inf - inf: handled by ``same``
            diff = np.where(same, 0.0, np.where(nan_a | nan_b, np.inf, np.abs(a - b)))
        scale = np.abs(b)
        bad = ~(diff <= atol + rtol * np.where(same, 0.0, scale))
        big = (scale >= atol) & ~same
        max_rel = float((diff[big] / scale[big]).max()) if big.any() else 0.0
    else:
        equal = got == want
        bad = ~np.asarray(equal, dtype=bool)
        diff = (
            np.abs(got.astype(np.float64) - want.astype(np.float64))
            if want.dtype.kind in "iub"
            else bad.astype(np.float64)
        )
        max_rel = 0.0 if not bad.any() else float("nan")
    result.update(
        ok=not bad.any() and got.dtype == want.dtype,
        mismatched=int(bad.sum()),
        max_abs=float(diff.max()),
        max_rel=max_rel,
    )
    if got.dtype != want.dtype:
        result["problem"] = f"dtype {got.dtype}, baseline {want.dtype}"
    if bad.any():
        result["worst_index"] = [int(i) for i in np.unravel_index(int(np.argmax(diff)), diff.shape)]
    return result


def _merge(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    if old is None:
        return new
    merged = dict(old)
    merged["ok"] = old["ok"] and new["ok"]
    merged["total"] = old["total"] + new["total"]
    merged["mismatched"] = old["mismatched"] + new["mismatched"]
    for key in ("max_abs", "max_rel"):
        merged[key] = max(old[key], new[key])
    if "problem" in new:
        merged["problem"] = new["problem"]
    return merged


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
        help="Precision of the backends under test (the baseline runs fp32); picks tolerances.",
    ),
    shapes: list[str] = typer.Option(
        [], "--shape", help="NAME=1x3x224x224 or NAME=MIN:OPT:MAX (random inputs use OPT)."
    ),
    inputs: list[str] = typer.Option(
        [], "--input", "-i", help="NAME=FILE.npy or FILE.npz; inputs not given are random."
    ),
    samples: int = typer.Option(1, "--samples", min=1, help="Random input sets to try."),
    seed: int = typer.Option(0, "--seed", help="Seed of the first random input set."),
    rtol: float | None = typer.Option(
        None, "--rtol", min=0.0, help="Override the relative tolerance."
    ),
    atol: float | None = typer.Option(
        None, "--atol", min=0.0, help="Override the absolute tolerance."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Run the same inputs through each backend and compare every output with the baseline's.

    Reports the max absolute and relative error per output and passes or fails against
    tolerances chosen from the precision (fp32 tight, fp16 and bf16 looser). Exits with 3
    when any output is out of tolerance.
    """
    names = split_names(backends)
    if len(names) < 2:
        raise typer.BadParameter(
            "give at least two backends, e.g. onnxruntime,reference", param_hint="--backends"
        )
    base_name = _pick_baseline(names, baseline)
    default_rtol, default_atol = TOLERANCES[precision]
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    parsed_shapes = parse_shapes(shapes) or None
    given = read_inputs(inputs)
    models: dict[str, Model] = {}
    try:
        for name in [base_name, *(n for n in names if n != base_name)]:
            is_base = name == base_name
            with spinner(f"compiling and loading {escape(model.name)} on {escape(name)}…"):
                models[name] = load(
                    model,
                    backend=name,
                    device="auto" if is_base else device,
                    precision="fp32" if is_base else precision,
                    shapes=parsed_shapes,
                )
        reports = _run_all(models, base_name, given, samples, seed, rtol, atol)
    finally:
        for m in models.values():
            m.close()
    ok = all(r["ok"] for r in reports)
    if as_json:
        write_json(
            {
                "ok": ok,
                "baseline": base_name,
                "precision": precision,
                "rtol": rtol,
                "atol": atol,
                "samples": samples,
                "results": reports,
            }
        )
    else:
        _print(reports, models[base_name], precision, rtol, atol, samples, ok)
    if not ok:
        raise typer.Exit(EXIT_CHECK_FAILED)


def _run_all(
    models: dict[str, Model],
    base_name: str,
    given: dict[str, Array],
    samples: int,
    seed: int,
    rtol: float,
    atol: float,
) -> list[dict[str, Any]]:
    base = models[base_name]
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for sample in range(samples):
        feeds = dict(given)
        complete_feeds(base, feeds, seed + sample)
        want = base.infer(feeds)
        for name, m in models.items():
            if name == base_name:
                continue
            got = m.infer(feeds)
            for out, expected in want.items():
                key = (name, out)
                if out not in got:
                    report = {
                        "ok": False,
                        "total": int(expected.size),
                        "mismatched": int(expected.size),
                        "max_abs": float("nan"),
                        "max_rel": float("nan"),
                        "problem": "missing",
                    }
                else:
                    report = compare_arrays(got[out], expected, rtol, atol)
                merged[key] = _merge(merged.get(key), report)
    return [
        {"backend": name, "device": str(models[name].device), "output": out, **report}
        for (name, out), report in merged.items()
    ]


def _fmt(value: float) -> str:
    return "-" if value != value else f"{value:.3g}"  # NaN → "-"


def _print(
    reports: list[dict[str, Any]],
    base: Model,
    precision: str,
    rtol: float,
    atol: float,
    samples: int,
    ok: bool,
) -> None:
    console.print(
        f"baseline [bold]{base.backend}[/] on {base.device} (fp32) · {precision} tolerances: "
        f"rtol {rtol:g}, atol {atol:g} · {samples} input set{'s' if samples > 1 else ''}"
    )
    table = Table(show_edge=False)
    table.add_column("backend", style="bold", no_wrap=True)
    table.add_column("output", no_wrap=True)
    table.add_column("max abs", justify="right")
    table.add_column("max rel", justify="right")
    table.add_column("out of tolerance", justify="right")
    table.add_column("result", no_wrap=True)
    for r in reports:
        verdict = "[green]pass[/]" if r["ok"] else "[red]FAIL[/]"
        if "problem" in r:
            verdict += f" ({escape(r['problem'])})"
        table.add_row(
            f"{escape(r['backend'])} ({r['device']})",
            escape(r["output"]),
            _fmt(r["max_abs"]),
            _fmt(r["max_rel"]),
            f"{r['mismatched']:,} / {r['total']:,}",
            verdict,
        )
    console.print(table)
    failed = [r for r in reports if not r["ok"]]
    if ok:
        console.print("[green]PASS[/]: every output is within tolerance")
    else:
        which = ", ".join(f"{r['backend']}:{r['output']}" for r in failed)
        console.print(f"[red]FAIL[/]: {len(failed)} output(s) out of tolerance: {escape(which)}")
