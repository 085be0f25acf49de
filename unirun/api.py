"""The public functions: load, compile, predict, and the measured ``backend="fastest"``."""

from __future__ import annotations

import logging
import os
import statistics
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from . import _registry
from ._build import Build
from ._match import load_artifact, open_model
from .artifact import MANIFEST_NAME, Artifact
from .device import Device
from .errors import BackendNotFoundError, OptionsError, UnirunError
from .model import Model
from .source import OnnxModel
from .tensor import random_feeds

__all__ = ["compile", "load", "predict"]

log = logging.getLogger("unirun")

Source = Any  # str | os.PathLike | bytes | onnx.ModelProto | Artifact


def load(
    source: Source,
    backend: str = "auto",
    device: str | Device = "auto",
    precision: str = "fp32",
    shapes: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | BaseModel | None = None,
    *,
    threads: int | None = None,
    optimization_level: int | None = None,
    cache: bool | str | os.PathLike[str] = True,
    strict_precision: bool = False,
) -> Model:
    """Compile ``source`` for a backend and device (through the cache) and load it.

    ``source`` is a path to an ``.onnx`` file, its bytes, an ``onnx.ModelProto``, or a saved
    artifact directory (whose manifest then fixes backend, device and options). ``cache`` may be
    False (build in a temporary directory) or a directory to use instead of the default cache.

    When the engine cannot compute in the requested ``precision`` on this device (fp16 on a CPU
    without fp16 units), the model runs in what the engine really uses, ``model.precision`` says
    so and a WARNING is logged; with ``strict_precision=True`` that raises ``OptionsError``.
    """
    artifact = _as_artifact(source)
    if artifact is not None:
        given = {
            "precision": precision != "fp32",
            "shapes": bool(shapes),
            "options": bool(options),
            "threads": threads is not None,
            "optimization_level": optimization_level is not None,
        }
        if any(given.values()):
            raise OptionsError(
                f"{', '.join(k for k, v in given.items() if v)} cannot change a compiled artifact "
                "(its manifest fixes them); compile the ONNX model with these options instead"
            )
        _check_precision(artifact, strict_precision)
        return load_artifact(artifact, backend, Device.parse(device), cache)
    if backend == "fastest":
        return _fastest(
            source,
            Device.parse(device),
            precision,
            shapes,
            options,
            threads,
            optimization_level,
            cache,
            strict_precision,
        )
    build = Build(source, backend, device, precision, shapes, options, threads, optimization_level)
    artifact, status = build.run(cache)
    _check_precision(artifact, strict_precision)
    return open_model(build.name, build.backend, build.device, artifact, status, cache)


def compile(
    source: Source,
    backend: str = "auto",
    device: str | Device = "auto",
    precision: str = "fp32",
    shapes: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | BaseModel | None = None,
    *,
    threads: int | None = None,
    optimization_level: int | None = None,
    cache: bool | str | os.PathLike[str] = True,
    strict_precision: bool = False,
) -> Artifact:
    """Compile ``source`` into an :class:`Artifact` (call ``.save(path)`` to keep a copy).

    Works for backends that can compile here without running (Core ML on Linux). Precision
    substitution is reported as for :func:`load`."""
    build = Build(
        source,
        backend,
        device,
        precision,
        shapes,
        options,
        threads,
        optimization_level,
        for_compile=True,
    )
    artifact = build.run(cache)[0]
    _check_precision(artifact, strict_precision)
    return artifact


def _check_precision(artifact: Artifact, strict: bool) -> None:
    """Never substitute a precision silently: warn, or refuse when asked to be strict."""
    manifest = artifact.manifest
    used, asked = manifest.computed_precision, manifest.options.precision
    if used is None or used == asked:
        return
    message = (
        f"backend {manifest.backend!r} computes in {used} on {manifest.device}, not the "
        f"requested {asked} (the device lacks {asked} support)"
    )
    if strict:
        raise OptionsError(f"{message}; strict_precision=True refuses the substitution")
    log.warning("%s; pass strict_precision=True to make this an error", message)


_predict_models: OrderedDict[tuple[Any, ...], Model] = OrderedDict()
_predict_lock = threading.Lock()
_PREDICT_KEEP = 4


def predict(source: Source, inputs: Any, **load_args: Any) -> dict[str, np.ndarray[Any, Any]]:
    """Load (once) and run: later calls with the same model and arguments reuse the loaded
    model. Keeps the last few models loaded; takes the keyword arguments of :func:`load`."""
    key = (_source_key(source), tuple(sorted((k, repr(v)) for k, v in load_args.items())))
    with _predict_lock:
        model = _predict_models.get(key)
        if model is not None and not model.closed:
            _predict_models.move_to_end(key)
    if model is None or model.closed:
        model = load(source, **load_args)
        with _predict_lock:
            _predict_models[key] = model
            while len(_predict_models) > _PREDICT_KEEP:
                _predict_models.popitem(last=False)[1].close()
    return model.infer(inputs)


def _source_key(source: Source) -> tuple[Any, ...]:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).resolve()
        try:
            stat = (path / MANIFEST_NAME if path.is_dir() else path).stat()
        except OSError:
            return ("path", str(path))
        return ("path", str(path), stat.st_mtime_ns, stat.st_size)
    if isinstance(source, Artifact):
        return ("artifact", str(source.directory))
    return ("model", OnnxModel.from_source(source).sha256)


# -- load ------------------------------------------------------------------------------------


def _as_artifact(source: Source) -> Artifact | None:
    if isinstance(source, Artifact):
        source.verify()
        return source
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        return Artifact.open(source)
    return None


# -- backend="fastest" --------------------------------------------------------------------------

_fastest_choice: dict[tuple[str, str, str], str] = {}


def _fastest(
    source: Source,
    device: Device,
    precision: str,
    shapes: Mapping[str, Any] | None,
    options: Mapping[str, Any] | BaseModel | None,
    threads: int | None,
    optimization_level: int | None,
    cache: bool | str | os.PathLike[str],
    strict_precision: bool = False,
) -> Model:
    """Compile on every available backend that can use ``device``, time each, keep the fastest."""
    model = OnnxModel.from_source(source)
    key = (model.sha256, str(device), repr((precision, shapes, threads, optimization_level)))
    names = [_fastest_choice[key]] if key in _fastest_choice else _registry.candidate_names(device)
    timings: dict[str, float] = {}
    best: Model | None = None
    for name in names:
        try:
            build = Build(
                model, name, device, precision, shapes, options, threads, optimization_level
            )
            artifact, status = build.run(cache)
            _check_precision(artifact, strict_precision)
            candidate = open_model(name, build.backend, build.device, artifact, status, cache)
        except UnirunError as exc:
            log.info("fastest: skipping %s: %s", name, exc)
            continue
        if len(names) == 1:
            return candidate
        feeds = random_feeds(candidate.inputs, candidate.options.shapes)
        timings[name] = _median_latency(candidate, feeds)
        if best is None or timings[name] < timings[best.backend]:
            if best is not None:
                best.close()
            best = candidate
        else:
            candidate.close()
    if best is None:
        raise BackendNotFoundError(
            f"no available backend could compile this model for device {device}"
        )
    log.info(
        "fastest: %s",
        ", ".join(
            f"{n} {t * 1e3:.2f} ms" for n, t in sorted(timings.items(), key=lambda kv: kv[1])
        ),
    )
    _fastest_choice[key] = best.backend
    return best


def _median_latency(
    model: Model, feeds: dict[str, np.ndarray[Any, Any]], budget: float = 1.0
) -> float:
    model.infer(feeds)  # warm-up: first runs allocate and tune
    samples: list[float] = []
    deadline = time.perf_counter() + budget
    while len(samples) < 5 or (time.perf_counter() < deadline and len(samples) < 50):
        start = time.perf_counter()
        model.infer(feeds)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)
