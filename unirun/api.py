"""The public functions: ``load``, ``compile`` and ``predict``.

The work lives beside them, one concern per module: ``_build`` (a compile request resolved,
checked against what the backend declares, compiled through the cache), ``_match`` (a saved
artifact matched with the engine and devices here, then loaded), ``fastest`` (the measured
choice of ``backend="fastest"``) and ``_predict`` (the model cache of ``predict``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from ._build import Build, BuildArgs, check_precision
from ._match import as_artifact, load_artifact, open_model
from ._predict import predict
from .artifact import Artifact
from .device import Device
from .errors import OptionsError
from .model import Model

__all__ = ["compile", "load", "predict"]

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
    calibration: Any = None,
    sample: Any = None,
    base_dir: str | os.PathLike[str] | None = None,
    expect_sha256: str | None = None,
) -> Model:
    """Compile ``source`` for a backend and device (through the cache) and load it.

    ``source`` is a path to an ``.onnx`` file, its bytes, an ``onnx.ModelProto``, or a saved
    artifact directory (whose manifest then fixes backend, device and options). ``cache`` may be
    False (build in a temporary directory) or a directory to use instead of the default cache.

    When the engine cannot compute in the requested ``precision`` on this device (fp16 on a CPU
    without fp16 units), the model runs in what the engine really uses, ``model.precision`` says
    so and a WARNING is logged; with ``strict_precision=True`` that raises ``OptionsError``.

    ``precision="int8"`` needs ``calibration``: an iterable of feeds like the real inputs, a
    directory of ``.npy``/``.npz`` files, or a :class:`unirun.quantize.Calibration`. The int8
    model is measured against fp32 on held-back samples; one outside the accuracy bound or
    slower than fp32 is reported the same way (see ``docs/precision.md``).

    ``backend="fastest"`` compiles on every available backend that can use ``device``, runs
    each on ``sample`` (a mapping name → array; invented when None, see :mod:`unirun.inputs`),
    keeps the quickest and says why in ``model.selection`` (a :class:`unirun.fastest.Selection`).
    A backend that fails to compile or run the sample is skipped (logged at WARNING). The choice
    is stored in the cache directory, so a later process does not measure again.

    ``base_dir`` is the folder of the external data files that a model given as bytes or an
    ``onnx.ModelProto`` refers to (a model file's are always read from its own folder).
    ``expect_sha256`` loads a saved artifact only if its :attr:`Artifact.sha256` (printed by
    ``unirun compile``) is this one: artifacts are code-like, pin those that come from elsewhere.
    """
    args = BuildArgs(
        backend, device, precision, shapes, options, threads, optimization_level, calibration,
        base_dir,
    )  # fmt: skip
    if sample is not None and backend.lower() != "fastest":
        raise OptionsError("sample= is used only by backend='fastest' (to time the candidates)")
    artifact = as_artifact(source, expect_sha256, cache)
    if artifact is not None:
        given = args.given() + (["sample"] if sample is not None else [])
        if given:
            raise OptionsError(
                f"{', '.join(given)} cannot change a compiled artifact (its manifest fixes "
                "them); compile the ONNX model with these options instead"
            )
        check_precision(artifact, strict_precision)
        return load_artifact(artifact, backend, Device.parse(device), cache)
    if expect_sha256 is not None:
        raise OptionsError(
            "expect_sha256 checks a saved artifact (a directory); this source is an ONNX model"
        )
    if backend.lower() == "fastest":
        from .fastest import load_fastest

        return load_fastest(source, args, cache, strict_precision, sample)
    build = Build(source, args, cache=cache)
    artifact, status = build.run(cache)
    check_precision(artifact, strict_precision)
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
    calibration: Any = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> Artifact:
    """Compile ``source`` into an :class:`Artifact` (call ``.save(path)`` to keep a copy).

    Works for backends that can compile here without running (Core ML on Linux). Precision
    substitution and ``base_dir`` work as for :func:`load`."""
    args = BuildArgs(
        backend, device, precision, shapes, options, threads, optimization_level, calibration,
        base_dir,
    )  # fmt: skip
    artifact = Build(source, args, for_compile=True, cache=cache).run(cache)[0]
    check_precision(artifact, strict_precision)
    return artifact
