"""The checking behind ``unirun compare``: every backend against the baseline on each invented
input set, each output within the tolerance of the precision really computed, retrying larger
invented sizes when an engine refuses the first ones."""

from __future__ import annotations

from typing import Any

from ..errors import InferenceError, UnirunError
from ..inputs import InputPlan, rejected
from ..model import Model
from ._agree import Array, compare_arrays, merge, numeric_float, output_scale, tolerance_for
from ._values import comparable, structure_difference

__all__ = ["run_all"]


def run_all(
    models: dict[str, Model],
    base_name: str,
    plan: InputPlan,
    samples: int,
    seed: int,
    rtol: float | None,
    atol: float | None,
    errors: dict[str, str],
    precision: str,
) -> list[dict[str, Any]]:
    """Compare every backend with the baseline on each input set. Failures go to ``errors``;
    when the baseline fails, nothing is compared. Cosine and top-1 agreement come from
    :class:`unirun.quantize.Meters`, which also judges int8 by its accuracy bound."""
    from ..quantize import Meters

    meters = Meters()
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for sample in range(samples):
        plan.reseed(seed + sample)
        wants: dict[int, dict[str, Array] | UnirunError] = {}
        for name, m in models.items():
            if name == base_name or name in errors:
                continue
            failed = _compare_one(
                name, m, base_name, models[base_name], plan, wants, merged, meters, rtol, atol
            )
            if failed is not None:
                errors[failed[0]] = failed[1]
                if failed[0] == base_name:
                    return []
    return [
        meters.annotate({"backend": name, "output": out, **r}, precision)
        for (name, out), r in merged.items()
    ]


def _compare_one(
    name: str,
    model: Model,
    base_name: str,
    base: Model,
    plan: InputPlan,
    wants: dict[int, dict[str, Array] | UnirunError],
    merged: dict[tuple[str, str], dict[str, Any]],
    meters: Any,
    rtol: float | None,
    atol: float | None,
) -> tuple[str, str] | None:
    """Compare ``model`` with the baseline at the smallest invented sizes both accept (the
    baseline's outputs per size are kept in ``wants``). Returns the backend that failed and
    its error, or None."""
    firsts: dict[str, tuple[UnirunError, str]] = {}
    tried: list[str] = []
    for attempt in range(plan.last_attempt + 1):
        plan.set_attempt(attempt)
        if attempt not in wants:
            wants[attempt] = _try(base, plan.feeds())
        want = wants[attempt]
        result: dict[str, Array] | UnirunError
        if isinstance(want, UnirunError):
            who, result = base_name, want
        else:
            who, result = name, _try(model, plan.feeds())
            if not isinstance(result, UnirunError):
                # Sequences and maps: their structure must match, their numbers are compared.
                kinds = {spec.name: spec.kind for spec in base.outputs}
                expect, shapes = comparable(want, kinds)
                got, got_shapes = comparable(result, kinds)
                for out, expected in expect.items():
                    report = _one(got, out, expected, model, base, rtol, atol)
                    differs = structure_difference(got_shapes.get(out, []), shapes.get(out, []))
                    if out in got and differs:
                        report.update(ok=False, problem=f"structure: {differs}")
                    elif out in got:
                        meters.add(name, out, got[out], expected)
                    if attempt:
                        report["inputs"] = plan.sizes()
                    merged[(name, out)] = merge(merged.get((name, out)), report)
                return None
        firsts.setdefault(who, (result, plan.story()))
        if attempt:
            tried.append(plan.sizes())
        grow = isinstance(result, InferenceError) and bool(plan.invented)
        if who == base_name and name in firsts:
            who, grow = name, False  # the baseline ran the smaller inputs this one refused
        if not grow or attempt == plan.last_attempt:
            error, story = firsts[who]
            if isinstance(error, InferenceError) and plan.invented:
                error = rejected(error, who, story, tried, plan.fix())
            return who, f"{error} ({type(error).__name__})"
    return None


def _try(model: Model, feeds: dict[str, Array]) -> dict[str, Array] | UnirunError:
    try:
        return model.infer(feeds)
    except UnirunError as exc:
        return exc


def _one(
    got: dict[str, Array],
    out: str,
    expected: Array,
    model: Model,
    base: Model,
    rtol: float | None,
    atol: float | None,
) -> dict[str, Any]:
    worst, default_rtol, factor = tolerance_for(model.precision, base.precision)
    scale = output_scale(expected)
    r = default_rtol if rtol is None else rtol
    a = factor * scale if atol is None else atol
    if not numeric_float(expected.dtype):
        r, a = 0.0, 0.0  # integers, booleans, strings: equal or not
    if out not in got:
        report = {
            "ok": False,
            "total": int(expected.size),
            "mismatched": int(expected.size),
            "fraction": 1.0,
            "max_abs": float("nan"),
            "max_rel": float("nan"),
            "rtol": r,
            "atol": a,
            "problem": "missing",
        }
    else:
        report = compare_arrays(got[out], expected, r, a)
    exact = not numeric_float(expected.dtype)
    return {**report, "tolerance": worst, "tolerance_applies": not exact, "scale": scale}
