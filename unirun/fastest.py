"""``backend="fastest"``: compile on every candidate backend, run each on sample inputs, time
it, keep the quickest. A candidate that fails to compile or to run the sample is skipped (and
logged at WARNING). The choice is stored in the compile cache, so another process with the same
model, settings and installed backends loads the winner without measuring again."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError

from . import _registry, _select
from ._build import Build, BuildArgs, CacheArg, check_precision
from ._choices import choice_key, read_choice, write_choice
from ._match import open_model
from ._timing import Timing, time_calls
from .cache import CompileCache, source_stamps
from .device import Device
from .errors import BackendNotFoundError, BackendUnavailableError, OptionsError, UnirunError
from .inputs import InputPlan, run_first
from .model import Model
from .options import CompileOptions, ShapeRange, options_error
from .source import OnnxModel, check_shapes
from .tensor import as_array

__all__ = ["Candidate", "Selection", "choose", "load_fastest"]

log = logging.getLogger("unirun")

#: Timing per candidate: at least this many calls, then more within the budget.
MIN_RUNS, MAX_RUNS, BUDGET_S = 5, 50, 1.0


@dataclass(frozen=True)
class Candidate:
    """One backend ``fastest`` considered: its median seconds per call on the sample, or the
    reason it was skipped."""

    backend: str
    seconds: float | None = None
    reason: str = ""

    def __str__(self) -> str:
        if self.reason:
            return f"{self.backend}: skipped ({self.reason})"
        if self.seconds is None:
            return f"{self.backend}: the only candidate"
        return f"{self.backend} {self.seconds * 1e3:.3g} ms"


@dataclass(frozen=True)
class Selection:
    """Why ``backend="fastest"`` chose ``backend``: kept on the model as ``model.selection``.

    ``reused`` is True when the choice was read from the compile cache (measured by an earlier
    load) rather than measured now; ``inputs`` says what the measurement ran on."""

    backend: str
    candidates: tuple[Candidate, ...]
    inputs: str
    reused: bool = False

    @property
    def skipped(self) -> dict[str, str]:
        return {c.backend: c.reason for c in self.candidates if c.reason}

    @property
    def seconds(self) -> dict[str, float]:
        return {c.backend: c.seconds for c in self.candidates if c.seconds is not None}

    def __str__(self) -> str:
        return f"{self.backend} ({'; '.join(map(str, self.candidates))})"


Opener = Callable[[str], Model]


def load_fastest(
    source: Any, args: BuildArgs, cache: CacheArg, strict_precision: bool, sample: Any
) -> Model:
    """``unirun.load(..., backend="fastest")``: every candidate built with the caller's
    arguments, timed on ``sample``, the quickest kept (and the choice stored in the cache)."""
    model = OnnxModel.from_source(source, base_dir=args.base_dir, stamps=source_stamps(cache))
    if args.calibration is not None:  # read an iterator once for every backend
        from .quantize import Calibration

        args = dataclasses.replace(args, calibration=Calibration.of(args.calibration))
    try:  # what no backend can accept is the caller's error, not every candidate's
        common = CompileOptions(
            precision=args.precision,  # type: ignore[arg-type]
            shapes=args.shapes or {},  # type: ignore[arg-type]
            threads=args.threads,
            optimization_level=args.optimization_level,
        )
    except ValidationError as exc:
        raise options_error(exc, "compile options") from None
    check_shapes(model.inputs, common.shapes)

    def open_backend(name: str) -> Model:
        build = Build(model, args.with_backend(name))
        artifact, status = build.run(cache)
        check_precision(artifact, strict_precision)
        return open_model(name, build.backend, build.device, artifact, status, cache)

    options = args.options
    if isinstance(options, BaseModel):
        plugin: Any = {type(options).__qualname__: options.model_dump(mode="json")}
    else:
        plugin = dict(options or {})
    settings = {
        **common.model_dump(mode="json"),
        "backend_options": plugin,
        "strict_precision": strict_precision,
    }
    root = None if cache is False else CompileCache.from_option(cache).root
    device = Device.parse(args.device)
    return choose(model, device, settings, open_backend, root, sample, common.shapes)


def choose(
    model: OnnxModel,
    device: Device,
    settings: Mapping[str, Any],
    open_backend: Opener,
    cache_root: Path | None,
    sample: Any = None,
    shapes: Mapping[str, ShapeRange] | None = None,
) -> Model:
    """Load ``model`` on the quickest candidate for ``device``; ``open_backend(name)`` compiles
    and loads it with the caller's options, ``settings`` are those options as plain data (part
    of the stored choice's key), ``sample`` the inputs to time (invented when None, sized by
    the declared ``shapes`` first)."""
    names = list(_select.candidate_names(device))
    if not names:
        raise BackendNotFoundError(
            f"backend='fastest' has no candidate: no available backend runs on device {device} "
            "(see `unirun backends`)"
        )
    plan = InputPlan(model.inputs, graph=model.proto, shapes=shapes, given=_sample(model, sample))
    versions = {i.name: (i.version, i.plugin_version) for i in _registry.backends()}
    key = choice_key(
        {
            **settings,
            "source_sha256": model.sha256,
            "device": str(device),
            "candidates": [[n, *versions.get(n, (None, None))] for n in names],
            "sample": sorted((k, str(v.dtype), list(v.shape)) for k, v in plan.given.items()),
        }
    )
    if cache_root is not None:
        reused = _reuse(read_choice(cache_root, key), names, open_backend, plan)
        if reused is not None:
            return reused
    chosen, candidates = _measure(names, open_backend, plan, device)
    selection = Selection(chosen.backend, candidates, _what(plan))
    log.info("fastest: %s", "; ".join(map(str, candidates)))
    if cache_root is not None:
        write_choice(
            cache_root,
            key,
            {
                "backend": selection.backend,
                "inputs": selection.inputs,
                "candidates": [vars(c) for c in candidates],
            },
        )
    setattr(chosen, "selection", selection)  # noqa: B010  (Model declares no such field yet)
    return chosen


def _sample(model: OnnxModel, sample: Any) -> dict[str, Any] | None:
    if sample is None:
        return None
    specs = {s.name: s for s in model.inputs}
    if not isinstance(sample, Mapping):
        if len(specs) != 1:
            raise OptionsError(
                f"sample= must map input names to arrays for a model with {len(specs)} inputs "
                f"({', '.join(specs)})"
            )
        sample = {next(iter(specs)): sample}
    return {k: as_array(v, specs[k]) if k in specs else np.asarray(v) for k, v in sample.items()}


def _what(plan: InputPlan) -> str:
    invented = plan.describe()
    given = ", ".join(plan.given)
    if invented and given:
        return f"given: {given}; invented: {invented}"
    return f"given: {given}" if given else f"invented: {invented}"


def _reuse(
    record: dict[str, Any] | None, names: list[str], open_backend: Opener, plan: InputPlan
) -> Model | None:
    if record is None or record.get("backend") not in names:
        return None
    name = str(record["backend"])
    try:
        candidates = tuple(_stored(c) for c in record.get("candidates", []))
        chosen = open_backend(name)
    except (UnirunError, KeyError, TypeError, AttributeError) as exc:
        log.warning(
            "backend='fastest': the stored choice %s fails now (%s); measuring again", name, exc
        )
        return None
    try:
        run_first(chosen, plan, "api")
    except UnirunError as exc:
        chosen.close()
        log.warning(
            "backend='fastest': the stored choice %s fails now (%s); measuring again", name, exc
        )
        return None
    selection = Selection(name, candidates, str(record.get("inputs", "")), reused=True)
    log.info("fastest: %s, chosen earlier (%s)", name, "; ".join(map(str, candidates)))
    setattr(chosen, "selection", selection)  # noqa: B010
    return chosen


def _stored(data: Any) -> Candidate:
    seconds = data.get("seconds")
    if seconds is not None and not isinstance(seconds, (int, float)):
        raise TypeError(f"stored seconds {seconds!r} is not a number")
    return Candidate(str(data["backend"]), seconds, str(data.get("reason", "")))


def _measure(
    names: list[str], open_backend: Opener, plan: InputPlan, device: Device
) -> tuple[Model, tuple[Candidate, ...]]:
    reasons: dict[str, UnirunError] = {}
    seconds: dict[str, float] = {}
    best: Model | None = None
    queue = list(names)
    while queue:
        name = queue.pop(0)
        try:
            candidate = open_backend(name)
        except UnirunError as exc:
            reasons[name] = _skip(name, exc)
            continue
        attempt = plan.attempt
        try:
            run_first(candidate, plan, "api")
            if plan.attempt != attempt and seconds:
                # The sizes grew: what was measured before ran on smaller inputs. Measure again.
                queue.extend(seconds)
                seconds.clear()
                if best is not None:
                    best.close()
                    best = None
            timing = _time(candidate, plan.feeds()) if len(names) > 1 else None
        except UnirunError as exc:
            candidate.close()
            plan.set_attempt(attempt)  # larger sizes did not help this one: don't impose them
            reasons[name] = _skip(name, exc)
            continue
        if timing is None:
            best = candidate
            break
        seconds[name] = timing.median
        if best is None or seconds[name] < seconds[best.backend]:
            if best is not None:
                best.close()
            best = candidate
        else:
            candidate.close()
    candidates = tuple(
        Candidate(n, seconds.get(n), _reason(reasons[n]) if n in reasons else "") for n in names
    )
    if best is None:
        raise _none_works(device, reasons)
    return best, tuple(sorted(candidates, key=lambda c: (c.seconds is None, c.seconds or 0)))


def _time(model: Model, feeds: dict[str, Any]) -> Timing:
    return time_calls(
        lambda: model.infer(feeds), min_runs=MIN_RUNS, max_runs=MAX_RUNS, budget=BUDGET_S
    )


def _reason(exc: UnirunError) -> str:
    return f"{type(exc).__name__}: {exc}"


def _skip(name: str, exc: UnirunError) -> UnirunError:
    log.warning("backend='fastest' skips %s: %s", name, _reason(exc))
    return exc


def _none_works(device: Device, reasons: Mapping[str, UnirunError]) -> UnirunError:
    listed = "; ".join(f"{n}: {_reason(e)}" for n, e in reasons.items())
    message = f"backend='fastest' found no backend that runs this model on {device}: {listed}"
    kinds = {type(e) for e in reasons.values()}
    cls = kinds.pop() if len(kinds) == 1 else BackendUnavailableError
    try:
        return cls(message)
    except TypeError:
        return BackendUnavailableError(message)
