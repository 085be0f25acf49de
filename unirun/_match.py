"""Loading: an artifact matched against the installed backend and the devices here, then handed
to the plugin as a :class:`~unirun.backend.LoadRequest`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

from . import _registry, _select
from ._admission import device_io_problem
from ._build import CacheArg, plugin_options
from ._calls import plugin_call
from .artifact import Artifact
from .backend import (
    Backend,
    DeviceInfo,
    Executable,
    LoadRequest,
    SupportsContexts,
    SupportsInfer,
    ThreadSafety,
)
from .cache import CacheStatus, CompileCache
from .device import Device
from .errors import ArtifactError, PluginIncompatibleError
from .model import Model

__all__ = ["as_artifact", "load_artifact", "load_request", "open_model"]


def as_artifact(
    source: Any, expect_sha256: str | None = None, cache: CacheArg = False
) -> Artifact | None:
    """``source`` as a verified artifact when it is one (an Artifact or a directory); with a
    cache, files unchanged since their last verification are not read again."""
    stamps = None if cache is False else CompileCache.from_option(cache).stamps
    if isinstance(source, Artifact):
        if expect_sha256 is not None:
            source.check_sha256(expect_sha256)
        source.verify(stamps)
        return source
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        return Artifact.open(source, expect_sha256=expect_sha256, stamps=stamps)
    return None


def load_artifact(artifact: Artifact, backend: str, device: Device, cache: CacheArg) -> Model:
    """Load a saved (verified) artifact: the manifest fixes backend, options and device kind."""
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
    format_now = be.capabilities.artifact_format
    if manifest.artifact_format and manifest.artifact_format != format_now:
        raise ArtifactError(
            f"the artifact holds a {manifest.artifact_format!r} payload, but the installed "
            f"{manifest.backend} plugin reads {format_now!r}: recompile it",
            field="artifact_format",
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
    return open_model(manifest.backend, be, info, artifact, "artifact", cache)


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
            else _select.pick_device(name, backend, request)
        )
    if request.kind != "auto" and not request.matches(Device(built_on.kind, request.index)):
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


def load_request(
    name: str, backend: Backend, device: DeviceInfo, artifact: Artifact, cache_dir: Path | None
) -> LoadRequest:
    """What ``Backend.load`` receives for a verified ``artifact``: plain values only."""
    manifest = artifact.manifest
    return LoadRequest(
        device=device,
        options=manifest.options,
        plugin_options=plugin_options(name, backend, manifest.options.backend_options),
        extra=manifest.extra,
        inputs=artifact.inputs,
        outputs=artifact.outputs,
        precision=manifest.computed_precision or manifest.options.precision,
        built_with=manifest.runtime_version,
        built_for=Device.parse(manifest.device),
        cache_dir=cache_dir,
        file=artifact.path,
    )


def open_model(
    name: str,
    backend: Backend,
    device: DeviceInfo,
    artifact: Artifact,
    status: CacheStatus,
    cache: CacheArg,
) -> Model:
    """Hand a verified artifact to the plugin and wrap what it returns in a :class:`Model`."""
    engine_dir = None
    if cache is not False:
        engine_dir = CompileCache.from_option(cache).engine_dir(name)
    request = load_request(name, backend, device, artifact, engine_dir)
    with plugin_call(name, backend, "load"):
        executable: object = backend.load(request)
    safety = backend.capabilities.thread_safety
    needs = SupportsContexts if safety is ThreadSafety.CONTEXTS else SupportsInfer
    if not isinstance(executable, needs):
        method = "create_context()" if safety is ThreadSafety.CONTEXTS else "infer(feeds)"
        raise PluginIncompatibleError(
            f"backend plugin {name!r} declares thread_safety={safety.value} but its executable "
            f"({type(executable).__name__}) has no {method}; this is a plugin bug"
        )
    if safety is not ThreadSafety.CONTEXTS and device.device.kind in backend.capabilities.device_io:
        problem = device_io_problem(executable)  # a context's is checked when first used
        if problem:
            raise PluginIncompatibleError(f"backend plugin {name!r} {problem}")
    return Model(
        backend=name,
        device=device.device,
        executable=cast(Executable, executable),
        capabilities=backend.capabilities,
        artifact=artifact,
        cache_status=status,
        error_mapper=backend,
    )
