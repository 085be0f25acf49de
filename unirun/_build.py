"""Build orchestration: one compile request resolved (model, backend, device, options), checked
against what the backend declares, compiled through the cache and sealed into an artifact."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from . import _registry
from ._calls import plugin_call
from .artifact import Artifact
from .backend import Backend, CompileRequest, CompileResult, DynamicShapes
from .cache import CacheStatus, CompileCache, build_key
from .device import Device
from .errors import CompileError, OptionsError, UnsupportedModelError
from .options import CompileOptions, options_error
from .source import OnnxModel, check_shapes

__all__ = ["Build", "CacheArg", "plugin_options"]

log = logging.getLogger("unirun")

CacheArg = bool | str | os.PathLike[str]


class Build:
    """One resolved compile request: model read, backend and device chosen, options checked."""

    def __init__(
        self,
        source: Any,
        backend: str,
        device: str | Device,
        precision: str,
        shapes: Mapping[str, Any] | None,
        options: Mapping[str, Any] | BaseModel | None,
        threads: int | None,
        optimization_level: int | None,
        *,
        for_compile: bool = False,
    ) -> None:
        self.model = OnnxModel.from_source(source)
        self.name, self.backend, self.device = _registry.select(
            backend, Device.parse(device), for_compile=for_compile
        )
        self.plugin_options = plugin_options(self.name, self.backend, options)
        self.options = _compile_options(
            self.name, self.backend, precision, shapes, threads, optimization_level,
            self.plugin_options,
        )  # fmt: skip
        check_shapes(self.model.inputs, self.options.shapes)
        _check_dtypes(self.name, self.backend, self.model)
        _check_dynamic(self.name, self.backend, self.model, self.options)
        probe, _, plugin_version = _registry.describe(self.name)
        self.stamp = {
            "backend": self.name,
            "plugin_version": plugin_version or getattr(self.backend, "plugin_version", "unknown"),
            "api_version": self.backend.api_version,
            "runtime_version": probe.version,
            "artifact_format": self.backend.capabilities.artifact_format,
            "device": str(self.device.device),
            "device_identity": self.device.identity,
            "source_sha256": self.model.sha256,
        }

    def run(self, cache: CacheArg) -> tuple[Artifact, CacheStatus]:
        if cache is False:
            staging = Path(tempfile.mkdtemp(prefix="unirun-build-"))
            try:
                artifact = self._compile(staging, None)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            weakref.finalize(artifact, shutil.rmtree, staging, True)
            return artifact, "off"
        store = CompileCache(None if cache is True else Path(cache))
        key = build_key({**self.stamp, "options": self.options.model_dump(mode="json")})
        engine_dir = store.engine_dir(self.name)
        return store.get_or_build(key, lambda staging: self._compile(staging, engine_dir))

    def _compile(self, staging: Path, engine_dir: Path | None) -> Artifact:
        request = CompileRequest(
            self.device, self.options, self.plugin_options, staging, engine_dir
        )
        started = time.perf_counter()
        with plugin_call(self.name, self.backend, "compile"):
            result = self.backend.compile(self.model, request)
        if not isinstance(result, CompileResult):
            raise CompileError(
                f"backend {self.name!r} returned {type(result).__name__} from compile(), not a "
                "CompileResult; this is a plugin bug"
            )
        log.info(
            "compiled with %s for %s in %.2fs",
            self.name,
            self.device.device,
            time.perf_counter() - started,
        )
        return Artifact._seal(staging, self.stamp, self.options, result)


def plugin_options(
    name: str, backend: Backend, options: Mapping[str, Any] | BaseModel | None
) -> BaseModel | None:
    """The backend's own options, validated once (the instance the plugin receives)."""
    model_cls: type[BaseModel] | None = backend.options_model
    if isinstance(options, BaseModel):
        if model_cls is None or not isinstance(options, model_cls):
            wanted = model_cls.__name__ if model_cls is not None else "no options"
            raise OptionsError(f"backend {name!r} takes {wanted}, not {type(options).__name__}")
        return options
    if options is not None and not isinstance(options, Mapping):
        raise OptionsError(
            f"options for backend {name!r} are a mapping of option name to value (or the "
            f"plugin's options model), not {type(options).__name__}"
        )
    if model_cls is None:
        if options:
            raise OptionsError(f"backend {name!r} takes no options; got {', '.join(options)}")
        return None
    try:
        return model_cls.model_validate(dict(options or {}))
    except ValidationError as exc:
        raise options_error(exc, f"options for backend {name!r}") from None


def _compile_options(
    name: str,
    backend: Backend,
    precision: str,
    shapes: Mapping[str, Any] | None,
    threads: int | None,
    optimization_level: int | None,
    plugin: BaseModel | None,
) -> CompileOptions:
    try:
        options = CompileOptions(
            precision=precision,  # type: ignore[arg-type]
            shapes=shapes or {},  # type: ignore[arg-type]
            threads=threads,
            optimization_level=optimization_level,
            backend_options=plugin.model_dump(mode="json") if plugin is not None else {},
        )
    except ValidationError as exc:
        raise options_error(exc, "compile options") from None
    if options.precision not in backend.capabilities.precisions:
        raise OptionsError(
            f"backend {name!r} does not support precision {options.precision!r}; it "
            f"supports {', '.join(backend.capabilities.precisions)}"
        )
    return options


def _check_dtypes(name: str, backend: Backend, model: OnnxModel) -> None:
    """Refuse, before the engine sees the model, graph inputs/outputs of undeclared types."""
    declared = set(backend.capabilities.dtypes)
    wrong = [spec for spec in (*model.inputs, *model.outputs) if spec.dtype not in declared]
    if wrong:
        raise UnsupportedModelError(
            f"backend {name!r} has no tensors of type "
            f"{', '.join(sorted({str(s.dtype) for s in wrong}))} (the model's "
            f"{'; '.join(map(str, wrong))}); convert those inputs/outputs in the model, or use "
            "a backend that carries them (`unirun backends` lists each one's dtypes)"
        )


def _check_dynamic(name: str, backend: Backend, model: OnnxModel, options: CompileOptions) -> None:
    mode = backend.capabilities.dynamic_shapes
    if mode is DynamicShapes.FREE:
        return
    needs = []
    for spec in model.inputs:
        bounds = options.shapes.get(spec.name)
        dynamic = spec.shape is None or any(isinstance(d, str) for d in spec.shape)
        if dynamic and (bounds is None or (mode is DynamicShapes.STATIC and not bounds.is_fixed)):
            needs.append(str(spec))
    if needs:
        what = "a fixed shape" if mode is DynamicShapes.STATIC else "shapes bounds (min, opt, max)"
        raise OptionsError(
            f"backend {name!r} needs {what} for every dynamic input; give shapes= for: "
            f"{'; '.join(needs)}"
        )
