"""Build orchestration: one compile request resolved (model, backend, device, options), checked
against what the backend declares, compiled through the cache and sealed into an artifact."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from . import _registry, _select
from ._calls import plugin_call
from .artifact import Artifact
from .backend import Backend, CompileRequest, CompileResult, DynamicShapes
from .cache import CacheStatus, CompileCache, build_key, source_stamps
from .device import Device
from .errors import CompileError, OptionsError, UnirunError, UnsupportedModelError
from .options import CompileOptions, options_error
from .source import OnnxModel, check_shapes
from .values import ValueKind

if TYPE_CHECKING:
    from .quantize._build import Int8Plan

__all__ = ["Build", "BuildArgs", "CacheArg", "check_precision", "plugin_options"]

log = logging.getLogger("unirun")

CacheArg = bool | str | os.PathLike[str]


@dataclass(frozen=True)
class BuildArgs:
    """What ``unirun.load``/``unirun.compile`` were asked to build, spelled once: the public
    functions fill it from their keywords and everything below them passes it along."""

    backend: str = "auto"
    device: str | Device = "auto"
    precision: str = "fp32"
    shapes: Mapping[str, Any] | None = None
    options: Mapping[str, Any] | BaseModel | None = None
    threads: int | None = None
    optimization_level: int | None = None
    calibration: Any = None
    base_dir: str | os.PathLike[str] | None = None

    def given(self) -> list[str]:
        """The build arguments given (a saved artifact's manifest fixes them all)."""
        given = {
            "base_dir": self.base_dir is not None,
            "precision": self.precision != "fp32",
            "shapes": bool(self.shapes),
            "options": bool(self.options),
            "threads": self.threads is not None,
            "optimization_level": self.optimization_level is not None,
            "calibration": self.calibration is not None,
        }
        return [name for name, is_given in given.items() if is_given]

    def with_backend(self, backend: str) -> BuildArgs:
        return dataclasses.replace(self, backend=backend)


class Build:
    """One resolved compile request: model read, backend and device chosen, options checked."""

    def __init__(
        self, source: Any, args: BuildArgs, *, for_compile: bool = False, cache: CacheArg = False
    ) -> None:
        """``cache``: the cache whose verified stamps spare re-hashing unchanged external
        weights (the build itself is cached by :meth:`run`)."""
        stamps = source_stamps(cache)
        self.model = OnnxModel.from_source(source, base_dir=args.base_dir, stamps=stamps)
        self.name, self.backend, self.device = _select.select(
            args.backend, Device.parse(args.device), for_compile=for_compile
        )
        self.plugin_options = plugin_options(self.name, self.backend, args.options)
        self.options = compile_options(self.name, self.backend, args, self.plugin_options)
        check_shapes(self.model.inputs, self.options.shapes)
        _check_kinds(self.name, self.backend, self.model)
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
        self.int8: Int8Plan | None = None
        if self.options.precision == "int8" or args.calibration is not None:
            valued = [str(s) for s in self.model.inputs if s.kind is not None]
            if valued:
                raise OptionsError(
                    f"int8 calibration feeds tensor inputs only; this model takes "
                    f"{'; '.join(valued)}: build it without int8"
                )
            from .quantize._build import plan

            self.int8 = plan(self, args.calibration)

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
        store = CompileCache.from_option(cache)
        fields = {
            **self.stamp,
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
        engine_dir: Path | None,
        cache: CacheArg = False,
        model: OnnxModel | None = None,
    ) -> Artifact:
        """Compile ``model`` (default: the source) into ``staging``; an int8 build first makes
        and measures its quantized forms, each compiled through here."""
        if self.int8 is not None and model is None:
            return self.int8.build(self, staging, engine_dir, cache)
        request = CompileRequest(
            self.device, self.options, self.plugin_options, staging, engine_dir
        )
        started = time.perf_counter()
        with plugin_call(self.name, self.backend, "compile"):
            result = self.backend.compile(model or self.model, request)
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
            wanted = f"{model_cls.__name__} options" if model_cls is not None else "no options"
            raise OptionsError(f"backend {name!r} takes {wanted}, not {type(options).__name__}")
        return options
    if options is not None and not isinstance(options, Mapping):
        raise OptionsError(
            f"options must be a mapping of option name to value (or the backend's options "
            f"model), not {type(options).__name__}: e.g. options={{'key': value}}"
        )
    if model_cls is None:
        if options:
            raise OptionsError(f"backend {name!r} takes no options; got {', '.join(options)}")
        return None
    try:
        return model_cls.model_validate(dict(options or {}))
    except ValidationError as exc:
        raise options_error(exc, f"options for backend {name!r}", model_cls.model_fields) from None


def compile_options(
    name: str, backend: Backend, args: BuildArgs, plugin: BaseModel | None
) -> CompileOptions:
    """The engine-neutral options, validated, and refused where the backend declares otherwise."""
    try:
        options = CompileOptions(
            precision=args.precision,  # type: ignore[arg-type]
            shapes=args.shapes or {},  # type: ignore[arg-type]
            threads=args.threads,
            optimization_level=args.optimization_level,
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
    wrong = [
        spec
        for spec in (*model.inputs, *model.outputs)
        if not (spec.kind.dtypes if spec.kind is not None else {spec.dtype}) <= declared
    ]
    if wrong:
        used = set().union(*(s.kind.dtypes if s.kind else {s.dtype} for s in wrong)) - declared
        raise UnsupportedModelError(
            f"backend {name!r} has no tensors of type "
            f"{', '.join(sorted(map(str, used)))} (the model's "
            f"{'; '.join(map(str, wrong))}); convert those inputs/outputs in the model, or use "
            "a backend that carries them (`unirun backends` lists each one's dtypes)"
        )


def _check_kinds(name: str, backend: Backend, model: OnnxModel) -> None:
    """Refuse, before the engine sees the model, inputs/outputs of value kinds (sequences, maps,
    optionals) the backend does not declare, saying which backends carry them."""
    declared = set(backend.capabilities.value_kinds)
    wrong = [
        spec
        for spec in (*model.inputs, *model.outputs)
        if spec.kind is not None and not spec.kind.kinds <= declared
    ]
    if not wrong:
        return
    missing = set().union(*(s.kind.kinds for s in wrong if s.kind is not None)) - declared
    kinds = [str(k) for k in ValueKind if k in missing]
    others = _carrying({*declared, *missing}, exclude=name)
    use = (
        f"use a backend that carries them ({', '.join(others)})"
        if others
        else "no installed backend carries them"
    )
    zipmap = any(
        node.op_type == "ZipMap" and node.domain == "ai.onnx.ml" for node in model.proto.graph.node
    )
    hint = (
        "; for a classifier converted with skl2onnx, export it without ZipMap, so that its "
        "probabilities are one tensor: skl2onnx.to_onnx(clf, X, options={'zipmap': False})"
        if zipmap
        else ""
    )
    raise UnsupportedModelError(
        f"backend {name!r} does not carry {' or '.join(kinds)} values (it declares "
        f"{', '.join(map(str, backend.capabilities.value_kinds))}), but the model has "
        f"{'; '.join(f'{s.name!r}: {s.kind}' for s in wrong)}; {use}{hint}"
    )


def _carrying(kinds: set[ValueKind], exclude: str) -> list[str]:
    """Installed backends that declare every kind in ``kinds`` (read from the plugins'
    declarations, without probing the engines)."""
    names = []
    for other in _registry.installed():
        if other == exclude:
            continue
        try:
            declared = _registry.backend_object(other).capabilities.value_kinds
        except UnirunError:
            continue
        if kinds <= set(declared):
            names.append(other)
    return names


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


def check_precision(artifact: Artifact, strict: bool) -> None:
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
