"""Rows in, rows out: run a model over any number of rows within its compiled batch bounds.

Shared by the Ray Data predictor (a batch of dataset rows) and Ray Serve batching (requests
stacked along axis 0). Axis 0 of every row-fed input is the row axis.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import InferenceError, OptionsError
from ..model import Model

Array = np.ndarray[Any, Any]

__all__ = ["row_bounds", "run_rows", "stack_requests"]


def row_bounds(model: Model, names: Iterable[str]) -> tuple[int, int | None]:
    """The fewest and most rows one engine call takes (``None``: no upper bound), from the
    compiled ``shapes`` bounds or fixed leading dimensions of the row-fed inputs ``names``."""
    wanted = set(names)
    low, high = 1, None
    for spec in model.inputs:
        if spec.name not in wanted or not spec.shape:
            continue
        bounds = model.options.shapes.get(spec.name)
        if bounds is not None:
            lo, hi = bounds.min[0], bounds.max[0]
        elif isinstance(spec.shape[0], int):
            lo = hi = spec.shape[0]
        else:
            continue
        low = max(low, lo)
        high = hi if high is None else min(high, hi)
    if high is not None and low > high:
        raise OptionsError(
            f"the inputs {', '.join(sorted(wanted))} disagree on their batch size (at least "
            f"{low}, at most {high} rows); compile the model with matching shapes"
        )
    return low, high


def run_rows(
    model: Model,
    rows: Mapping[str, Array],
    constants: Mapping[str, Array] | None = None,
    bounds: tuple[int, int | None] = (1, None),
    max_rows: int | None = None,
) -> dict[str, Array]:
    """Run ``rows`` (arrays sharing axis 0) through ``model`` in chunks that respect ``bounds``;
    a chunk smaller than the minimum is padded with its last row and the padding dropped again.
    Every output must have the row axis first (InferenceError otherwise)."""
    count = len(next(iter(rows.values())))
    low, high = bounds
    step = min(x for x in (high, max_rows, max(count, 1)) if x is not None)
    step = max(step, low)
    parts: dict[str, list[Array]] = {}
    for start in range(0, count, step):
        chunk = {k: v[start : start + step] for k, v in rows.items()}
        taken = len(next(iter(chunk.values())))
        if taken < low:
            chunk = {k: _pad(v, low) for k, v in chunk.items()}
        out = model.infer({**chunk, **(constants or {})})
        for name, value in out.items():
            if value.ndim == 0 or value.shape[0] != max(taken, low):
                raise InferenceError(
                    f"output {name!r} has shape {value.shape} for {max(taken, low)} rows: its "
                    "first axis is not the row axis, so rows cannot be handed back; leave it "
                    "out of the outputs"
                )
            parts.setdefault(name, []).append(value[:taken])
    if not parts:
        return {spec.name: np.empty((0,), spec.dtype.numpy) for spec in model.outputs}
    return {k: v[0] if len(v) == 1 else np.concatenate(v) for k, v in parts.items()}


def stack_requests(
    model: Model, requests: Sequence[Mapping[str, Array]], max_rows: int | None = None
) -> list[dict[str, Array] | Exception]:
    """Answer several requests to one model with as few engine calls as possible: requests
    whose inputs agree on dtype and trailing shape are stacked along axis 0 and split again.
    A failing stack is retried request by request, so one bad request fails only itself."""
    results: list[dict[str, Array] | Exception | None] = [None] * len(requests)
    groups: dict[tuple[Any, ...], list[int]] = {}
    for index, feeds in enumerate(requests):
        key = tuple((n, a.dtype.str, a.shape[1:]) for n, a in sorted(feeds.items()))
        groups.setdefault(key, []).append(index)
    bounds = row_bounds(model, requests[0]) if requests else (1, None)
    for members in groups.values():
        if len(members) > 1:
            try:
                names = list(requests[members[0]])
                stacked = {n: np.concatenate([requests[i][n] for i in members]) for n in names}
                out = run_rows(model, stacked, None, bounds, max_rows)
                sizes = np.cumsum([len(requests[i][names[0]]) for i in members])[:-1]
                split = {n: np.split(v, sizes) for n, v in out.items()}
                for j, i in enumerate(members):
                    results[i] = {n: parts[j] for n, parts in split.items()}
                continue
            except Exception:
                pass  # one bad request must not fail the others: answer each on its own
        for i in members:
            try:
                results[i] = model.infer(requests[i])
            except Exception as exc:
                results[i] = exc
    return [r if r is not None else InferenceError("no result") for r in results]


def _pad(value: Array, rows: int) -> Array:
    extra = np.repeat(value[-1:], rows - len(value), axis=0)
    return np.concatenate([value, extra])
