"""The public functions: load, compile, predict, and the measured ``backend="fastest"``."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ValidationError

from . import _registry
from .artifact import MANIFEST_NAME, Artifact
from .backend import Backend, DeviceInfo, Target
from .cache import CacheStatus, CompileCache, build_key
from .device import Device
from .errors import (
    ArtifactError,
    CompileError,
    OptionsError,
    UnirunError,
)
from .model import Model
from .options import CompileOptions, options_error
from .source import OnnxModel, check_shapes

if TYPE_CHECKING:
    from .quantize._build import Int8Plan

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
    if sample is not None and backend.lower() != "fastest":
        raise OptionsError("sample= is used only by backend='fastest' (to time the candidates)")
    artifact = _as_artifact(source, expect_sha256)
    if artifact is not None:
        given = {
            "base_dir": base_dir is not None,
            "precision": precision != "fp32",
            "shapes": bool(shapes),
            "options": bool(options),
            "threads": threads is not None,
            "optimization_level": optimization_level is not None,
            "calibration": calibration is not None,
            "sample": sample is not None,
        }
        if any(given.values()):
            raise OptionsError(
                f"{', '.join(k for k, v in given.items() if v)} cannot change a compiled artifact "
                "(its manifest fixes them); compile the ONNX model with these options instead"
            )
        _check_precision(artifact, strict_precision)
        return _load_artifact(artifact, backend, Device.parse(device), cache)
    if expect_sha256 is not None:
        raise OptionsError(
            "expect_sha256 checks a saved artifact (a directory); this source is an ONNX model"
        )
    if backend.lower() == "fastest":
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
            calibration,
            sample,
            base_dir,
        )
    build = _Build(
        source,
        backend,
        device,
        precision,
        shapes,
        options,
        threads,
        optimization_level,
        base_dir,
        calibration=calibration,
    )
    artifact, status = build.run(cache)
    _check_precision(artifact, strict_precision)
    return _open(build.name, build.backend, build.device.device, artifact, status, cache)


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
    build = _Build(
        source,
        backend,
        device,
        precision,
        shapes,
        options,
        threads,
        optimization_level,
        base_dir,
        for_compile=True,
        calibration=calibration,
    )
    artifact = build.run(cache)[0]
    _check_precision(artifact, strict_precision)
    return artifact


def _check_precision(artifact: Artifact, strict: bool) -> None:
    """Never substitute a precision silently: warn, or refuse when asked to be strict."""
    manifest = artifact.manifest
    if "quantization" in manifest.extra:
        from .quantize import check

        check(manifest, strict)
    used, asked = manifest.computed_precision, manifest.options.precision
    if used is None or used == asked:
        return
    reason = f"the device lacks {asked} support"
    if asked == "int8":
        reason = "only its weights are int8; extra['quantization'] lists the forms measured"
    message = (
        f"backend {manifest.backend!r} computes in {used} on {manifest.device}, not the "
        f"requested {asked} ({reason})"
    )
    if strict:
        raise OptionsError(f"{message}; strict_precision=True refuses the substitution")
    log.warning("%s; pass strict_precision=True to make this an error", message)


class _Loaded:
    """A model ``predict`` keeps: the files it came from (to notice when they change) and the
    calls running on it (an evicted model is closed by the last of them)."""

    __slots__ = ("evicted", "files", "model", "stamp", "users")

    def __init__(self, model: Model, files: tuple[Path, ...], stamp: tuple[Any, ...]) -> None:
        self.model = model
        self.files = files
        self.stamp = stamp
        self.users = 0
        self.evicted = False


_predict_models: OrderedDict[tuple[Any, ...], Model] = OrderedDict()
_predict_info: dict[Model, _Loaded] = {}  # every model predict loaded and has not closed
_predict_lock = threading.Lock()
_PREDICT_KEEP = 4


def predict(source: Source, inputs: Any, **load_args: Any) -> dict[str, np.ndarray[Any, Any]]:
    """Load (once) and run: later calls with the same model and arguments reuse the loaded
    model. Keeps the last few models loaded; takes the keyword arguments of :func:`load`.

    A model given by path is loaded again when its file, or a file it references (external
    weights, an artifact's payload), changes: each call compares their modification time,
    size and inode with those of the loaded files (a few ``stat`` calls, no hashing).
    Thread-safe: a model that falls out of the cache is closed once no call runs on it."""
    key = (_source_key(source), tuple(sorted((k, repr(v)) for k, v in load_args.items())))
    with _predict_lock:
        model = _predict_models.get(key)
        entry = None if model is None else _predict_info[model]
        if entry is not None:
            entry.users += 1
            _predict_models.move_to_end(key)
    if entry is not None and entry.files and _stamp(entry.files) != entry.stamp:
        with _predict_lock:
            if _predict_models.get(key) is entry.model:
                del _predict_models[key]
                entry.evicted = True
        _done(entry)
        entry = None
    if entry is None:
        entry = _predict_load(key, source, load_args)
    try:
        return entry.model.infer(inputs)
    finally:
        _done(entry)


def _predict_load(key: tuple[Any, ...], source: Source, load_args: dict[str, Any]) -> _Loaded:
    files: tuple[Path, ...] = ()
    stamp: tuple[Any, ...] = ()
    if isinstance(source, (str, os.PathLike)) and not Path(source).is_dir():
        # Read the model here, so that the files stamped are those this load reads.
        path = Path(source).resolve()
        before = _stamp((path,))
        source = OnnxModel.from_source(path)
        files = (path, *source.external_files)
        stamp = before + _stamp(files[1:])
    model = load(source, **load_args)
    if isinstance(source, (str, os.PathLike)):  # an artifact directory
        folder = model.artifact.directory
        files = (folder / MANIFEST_NAME, *(folder / f.path for f in model.artifact.manifest.files))
        stamp = _stamp(files)
    entry = _Loaded(model, files, stamp)
    entry.users = 1
    with _predict_lock:
        evicted = [_predict_models.pop(key)] if key in _predict_models else []
        _predict_models[key] = model
        _predict_info[model] = entry
        while len(_predict_models) > _PREDICT_KEEP:
            evicted.append(_predict_models.popitem(last=False)[1])
        idle = []
        for old in evicted:
            info = _predict_info[old]
            info.evicted = True
            if not info.users:
                idle.append(_predict_info.pop(old).model)
    for old_model in idle:
        old_model.close()
    return entry


def _done(entry: _Loaded) -> None:
    """A call on ``entry`` is over; the last call on an evicted model closes it."""
    with _predict_lock:
        entry.users -= 1
        idle = entry.evicted and not entry.users
        if idle:
            del _predict_info[entry.model]
    if idle:
        entry.model.close()


def _stamp(files: tuple[Path, ...]) -> tuple[Any, ...]:
    stamps: list[Any] = []
    for file in files:
        try:
            st = file.stat()
        except OSError:
            stamps.append(None)
            continue
        stamps.append((st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev))
    return tuple(stamps)


def _source_key(source: Source) -> tuple[Any, ...]:
    if isinstance(source, (str, os.PathLike)):
        return ("path", str(Path(source).resolve()))
    if isinstance(source, Artifact):
        return ("artifact", str(source.directory))
    return ("model", OnnxModel.from_source(source).sha256)


# -- compile -----------------------------------------------------------------------------------


class _Build:
    """One resolved compile request: model read, backend and device chosen, options checked."""

    def __init__(
        self,
        source: Source,
        backend: str,
        device: str | Device,
        precision: str,
        shapes: Mapping[str, Any] | None,
        options: Mapping[str, Any] | BaseModel | None,
        threads: int | None,
        optimization_level: int | None,
        base_dir: str | os.PathLike[str] | None = None,
        *,
        for_compile: bool = False,
        calibration: Any = None,
    ) -> None:
        self.model = OnnxModel.from_source(source, base_dir=base_dir)
        self.name, self.backend, self.device = _registry.select(
            backend, Device.parse(device), for_compile=for_compile
        )
        self.options, self.plugin_options = _options(
            self.name, self.backend, precision, shapes, options, threads, optimization_level
        )
        check_shapes(self.model.inputs, self.options.shapes)
        _check_dynamic(self.name, self.backend, self.model, self.options)
        probe, _, plugin_version = _registry.describe(self.name)
        self.stamp = {
            "backend": self.name,
            "plugin_version": plugin_version or getattr(self.backend, "plugin_version", "unknown"),
            "api_version": self.backend.api_version,
            "runtime_version": probe.version,
            "device_identity": self.device.identity,
            "source_sha256": self.model.sha256,
        }
        self.int8: Int8Plan | None = None
        if self.options.precision == "int8" or calibration is not None:
            from .quantize._build import plan

            self.int8 = plan(self, calibration)

    def run(self, cache: bool | str | os.PathLike[str]) -> tuple[Artifact, CacheStatus]:
        if cache is False:
            staging = Path(tempfile.mkdtemp(prefix="unirun-build-"))
            try:
                # The engine's own cache must not land among the payload files.
                with tempfile.TemporaryDirectory(prefix="unirun-engine-") as scratch:
                    artifact = self._compile(staging, Path(scratch), False)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            weakref.finalize(artifact, shutil.rmtree, staging, True)
            return artifact, "off"
        store = CompileCache.from_option(cache)
        fields = {
            **self.stamp,
            "device": str(self.device.device),
            "options": self.options.model_dump(mode="json"),
            **({"int8": self.int8.key()} if self.int8 is not None else {}),
        }
        engine_dir = store.engine_dir(self.name)
        return store.get_or_build(
            build_key(fields),
            lambda staging: self._compile(staging, engine_dir, cache),
            fields=fields,
        )

    def _compile(
        self,
        staging: Path,
        engine_dir: Path,
        cache: bool | str | os.PathLike[str] = False,
        model: OnnxModel | None = None,
    ) -> Artifact:
        if self.int8 is not None and model is None:
            return self.int8.build(self, staging, engine_dir, cache)
        target = Target(
            self.device.device, self.options, self.plugin_options, staging, engine_dir, self.stamp
        )
        started = time.perf_counter()
        try:
            artifact = self.backend.compile(model or self.model, target)
        except UnirunError:
            raise
        except Exception as exc:
            raise CompileError(
                f"backend {self.name!r} failed to compile the model: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(artifact, Artifact):
            raise CompileError(
                f"backend {self.name!r} returned {type(artifact).__name__} from "
                "compile(), not an Artifact; this is a plugin bug"
            )
        log.info(
            "compiled with %s for %s in %.2fs",
            self.name,
            self.device.device,
            time.perf_counter() - started,
        )
        return artifact


def _options(
    name: str,
    backend: Backend,
    precision: str,
    shapes: Mapping[str, Any] | None,
    options: Mapping[str, Any] | BaseModel | None,
    threads: int | None,
    optimization_level: int | None,
) -> tuple[CompileOptions, BaseModel | None]:
    model_cls: type[BaseModel] | None = getattr(backend, "options_model", None)
    plugin: BaseModel | None = None
    if options is not None and not isinstance(options, (Mapping, BaseModel)):
        raise OptionsError(
            f"options must be a mapping of option name to value (or the backend's options "
            f"model), not {type(options).__name__}: e.g. options={{'key': value}}"
        )
    if isinstance(options, BaseModel):
        if model_cls is not None and not isinstance(options, model_cls):
            raise OptionsError(
                f"backend {name!r} takes {model_cls.__name__} options, not {type(options).__name__}"
            )
        plugin = options
    elif model_cls is not None:
        try:
            plugin = model_cls.model_validate(dict(options or {}))
        except ValidationError as exc:
            raise options_error(
                exc, f"options for backend {name!r}", model_cls.model_fields
            ) from None
    elif options:
        raise OptionsError(f"backend {name!r} takes no options; got {', '.join(options)}")
    try:
        compile_options = CompileOptions(
            precision=precision,  # type: ignore[arg-type]
            shapes=shapes or {},  # type: ignore[arg-type]
            threads=threads,
            optimization_level=optimization_level,
            backend_options=plugin.model_dump(mode="json") if plugin is not None else {},
        )
    except ValidationError as exc:
        raise options_error(exc, "compile options") from None
    if compile_options.precision not in backend.capabilities.precisions:
        raise OptionsError(
            f"backend {name!r} does not support precision {compile_options.precision!r}; it "
            f"supports {', '.join(backend.capabilities.precisions)}"
        )
    return compile_options, plugin


def _check_dynamic(name: str, backend: Backend, model: OnnxModel, options: CompileOptions) -> None:
    mode = backend.capabilities.dynamic_shapes
    if mode == "free":
        return
    needs = []
    for spec in model.inputs:
        bounds = options.shapes.get(spec.name)
        dynamic = spec.shape is None or any(isinstance(d, str) for d in spec.shape)
        if dynamic and (bounds is None or (mode == "static" and not bounds.is_fixed)):
            needs.append(str(spec))
    if needs:
        what = "a fixed shape" if mode == "static" else "shapes bounds (min, opt, max)"
        raise OptionsError(
            f"backend {name!r} needs {what} for every dynamic input; give shapes= for: "
            f"{'; '.join(needs)}"
        )


# -- load --------------------------------------------------------------------------------------


def _as_artifact(source: Source, expect_sha256: str | None = None) -> Artifact | None:
    if isinstance(source, Artifact):
        if expect_sha256 is not None:
            source.check_sha256(expect_sha256)
        source.verify()
        return source
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        return Artifact.open(source, expect_sha256=expect_sha256)
    return None


def _load_artifact(
    artifact: Artifact, backend: str, device: Device, cache: bool | str | os.PathLike[str]
) -> Model:
    manifest = artifact.manifest
    if backend.lower() not in ("auto", manifest.backend.lower()):
        raise ArtifactError(
            f"the artifact was built for backend {manifest.backend!r}, not {backend!r}; "
            "compile the ONNX model for that backend instead",
            field="backend",
        )
    be = _registry.get_backend(manifest.backend)
    probe, devices, _ = _registry.describe(manifest.backend)
    if manifest.api_version != be.api_version:
        raise ArtifactError(
            f"the artifact was built through plugin API {manifest.api_version}; the installed "
            f"{manifest.backend} plugin speaks {be.api_version}: recompile it",
            field="api_version",
        )
    if be.capabilities.pins_runtime_version and manifest.runtime_version != probe.version:
        raise ArtifactError(
            f"the artifact was built with {manifest.backend} {manifest.runtime_version}, but "
            f"{probe.version} is installed; recompile it (field runtime_version)",
            field="runtime_version",
        )
    built_on = Device.parse(manifest.device)
    info = _artifact_device(
        manifest.backend, be, built_on, device, devices, manifest.device_identity
    )
    return _open(manifest.backend, be, info.device, artifact, "artifact", cache)


def _artifact_device(
    name: str,
    backend: Backend,
    built_on: Device,
    request: Device,
    devices: tuple[DeviceInfo, ...],
    identity: str,
) -> DeviceInfo:
    if built_on.kind == "auto":
        # Built for "the engine chooses": the artifact holds nothing device-specific, so any
        # device the backend has may load it (Core ML picks compute units at load time).
        return (
            DeviceInfo(built_on)
            if request.kind == "auto"
            else _registry.pick_device(name, backend, request)
        )
    if request.kind not in ("auto", built_on.kind):
        raise ArtifactError(
            f"the artifact was built for device {built_on}, not {request}; compile the ONNX "
            "model for that device instead",
            field="device",
        )
    want = Device(built_on.kind, request.index if request.index is not None else built_on.index)
    for info in devices:
        if want.matches(info.device):
            if identity and info.identity and info.identity != identity:
                raise ArtifactError(
                    f"the artifact was built for {identity!r}, but {info.device} here is "
                    f"{info.identity!r} (field device_identity); recompile it on this machine",
                    field="device_identity",
                )
            return info
    have = ", ".join(str(i.device) for i in devices) or "none"
    raise ArtifactError(
        f"the artifact needs device {want} of backend {name!r}, which is not available here "
        f"(available: {have})",
        field="device",
    )


def _open(
    name: str,
    backend: Backend,
    device: Device,
    artifact: Artifact,
    status: CacheStatus,
    cache: bool | str | os.PathLike[str],
) -> Model:
    engine_dir = None
    if cache is not False:
        engine_dir = CompileCache.from_option(cache).engine_dir(name)
    try:
        executable = backend.load(artifact, device, cache_dir=engine_dir)
    except UnirunError:
        raise
    except Exception as exc:
        raise ArtifactError(
            f"backend {name!r} failed to load the artifact at {artifact.directory}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return Model(
        backend=name,
        device=device,
        executable=executable,
        capabilities=backend.capabilities,
        artifact=artifact,
        cache_status=status,
    )


# -- backend="fastest" -------------------------------------------------------------------------


def _fastest(
    source: Source,
    device: Device,
    precision: str,
    shapes: Mapping[str, Any] | None,
    options: Mapping[str, Any] | BaseModel | None,
    threads: int | None,
    optimization_level: int | None,
    cache: bool | str | os.PathLike[str],
    strict_precision: bool,
    calibration: Any,
    sample: Any,
    base_dir: str | os.PathLike[str] | None,
) -> Model:
    from .fastest import choose

    model = OnnxModel.from_source(source, base_dir=base_dir)
    if calibration is not None:  # read an iterator once for every backend
        from .quantize import Calibration

        calibration = Calibration.of(calibration)
    try:  # what no backend can accept is the caller's error, not every candidate's
        common = CompileOptions(
            precision=precision,  # type: ignore[arg-type]
            shapes=shapes or {},  # type: ignore[arg-type]
            threads=threads,
            optimization_level=optimization_level,
        )
    except ValidationError as exc:
        raise options_error(exc, "compile options") from None
    check_shapes(model.inputs, common.shapes)

    def open_backend(name: str) -> Model:
        build = _Build(
            model,
            name,
            device,
            precision,
            shapes,
            options,
            threads,
            optimization_level,
            calibration=calibration,
        )
        artifact, status = build.run(cache)
        _check_precision(artifact, strict_precision)
        return _open(name, build.backend, build.device.device, artifact, status, cache)

    if isinstance(options, BaseModel):
        plugin: Any = {type(options).__qualname__: options.model_dump(mode="json")}
    else:
        plugin = dict(options or {})
    settings = {
        **common.model_dump(mode="json"),
        "backend_options": plugin,
        "strict_precision": strict_precision,
    }
    root = None if cache is False else CompileCache(None if cache is True else Path(cache)).root
    return choose(model, device, settings, open_backend, root, sample, common.shapes)
