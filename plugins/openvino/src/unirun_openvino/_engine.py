"""Thin wrappers over the OpenVINO calls the backend makes, each mapping the engine's errors."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import map_error, message

if TYPE_CHECKING:
    from unirun.source import OnnxModel

log = logging.getLogger("unirun.openvino")

#: CPU-plugin settings that only take effect on a whole Core (AUTO does not pass them on).
CpuSettings = tuple[tuple[str, str], ...]


@functools.cache
def ov() -> Any:
    import openvino

    return openvino


@functools.cache
def core(cpu: CpuSettings = ()) -> Any:
    """One Core per set of CPU-plugin settings: a Core owns the device plugins and may be
    shared between threads; settings made on it apply to everything it compiles."""
    instance = ov().Core()
    if cpu:
        instance.set_property("CPU", dict(cpu))
    return instance


def read(model: OnnxModel) -> Any:
    try:
        readable = model.for_engine()
        if isinstance(readable, Path):
            return core().read_model(str(readable))  # external weights resolve next to it
        return core().read_model(
            model.data if readable is model.proto else readable.SerializeToString()
        )
    except RuntimeError as exc:
        raise map_error(exc, "read", model.proto) from exc


def compile_model(engine: Any, ov_model: Any, device: str, props: Mapping[str, Any]) -> Any:
    try:
        return engine.compile_model(ov_model, device, dict(props))
    except RuntimeError as exc:
        raise map_error(exc, "compile") from exc


def export(compiled: Any, device: str) -> bytes | None:
    try:
        data = compiled.export_model()
    except RuntimeError as exc:  # AUTO cannot export ("Not Implemented")
        log.info("OpenVINO cannot export a model compiled for %s (%s)", device, message(exc))
        return None
    # 2026.4 returns io.BytesIO although its docstring promises bytes
    return bytes(data.getvalue() if hasattr(data, "getvalue") else data)


def imports(engine: Any, blob: bytes, device: str, props: Mapping[str, Any]) -> bool:
    try:
        engine.import_model(blob, device, dict(props))
    except RuntimeError:
        return False
    return True


def loaded_from_cache(compiled: Any) -> bool:
    try:
        return bool(compiled.get_property("LOADED_FROM_CACHE"))
    except RuntimeError:
        return False


def execution_devices(compiled: Any) -> list[str]:
    try:
        return [str(d) for d in compiled.get_property("EXECUTION_DEVICES")]
    except RuntimeError:
        return []


def cache_key(*parts: Mapping[str, Any]) -> str:
    """A short digest of properties, to give each property set its own CACHE_DIR: OpenVINO's
    cache key ignores some properties that change the compiled model (SNIPPETS_MODE)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
