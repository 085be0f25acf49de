"""Thin wrappers over the OpenVINO calls the backend makes, each mapping the engine's errors."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unirun.errors import CompileError, no_space

from ._dtypes import PRECISION_OF
from ._errors import map_error, message, out_of_space

if TYPE_CHECKING:
    from unirun.options import Precision
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


def expand_weights(ov_model: Any) -> None:
    """Fold the int8 weights of ``ov_model`` (int8 constants behind Convert and Multiply, as
    OpenVINO reads ONNX ``DequantizeLinear`` weights) into float32 constants, in place. The CPU
    plugin otherwise keeps such weights compressed and expands them on every call
    (``FullyConnected`` of runtime precision ``i8``), which costs 4-17 % of a float call on a
    small transformer; expanded, the model computes exactly as before at float speed."""
    from openvino import passes

    manager = passes.Manager()
    manager.register_pass(passes.ConstantFolding())
    try:
        manager.run_passes(ov_model)
    except RuntimeError as exc:
        raise map_error(exc, "compile") from exc


def save_ir(ov_model: Any, path: Path, size: int) -> None:
    """The OpenVINO IR (``.xml`` + ``.bin``) with exact weights (``save_model`` compresses them
    to fp16 by default); ``size`` (bytes of the model) sizes the check for a full disk."""
    try:
        ov().save_model(ov_model, str(path), compress_to_fp16=False)
    except RuntimeError as exc:  # a full disk reads "basic_ios::clear: iostream error"
        full = out_of_space(exc, path.parent, size)
        raise (full or CompileError(f"OpenVINO cannot write its IR: {message(exc)}")) from exc


def write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        full = no_space(exc, path.parent, "write the compiled blob")
        raise (full or CompileError(f"cannot write {path}: {exc.strerror}")) from exc


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


def inference_type(compiled: Any) -> str:
    """The element type the compiled model computes floating-point math in (``"f32"``,
    ``"bf16"``, ``"f16"``), as OpenVINO reports it; for AUTO, that of the devices it runs on.
    ``"unknown"`` where the device does not say, or AUTO's devices disagree."""
    try:
        return str(compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name())
    except RuntimeError:  # AUTO: "not supported property"; its devices answer for it
        pass
    try:
        per_device = dict(compiled.get_property("DEVICE_PROPERTIES"))
    except RuntimeError:
        return "unknown"
    chosen = set(execution_devices(compiled)) & set(per_device) or set(per_device)
    found = set()
    for name in chosen:
        hint: Any = dict(per_device[name]).get("INFERENCE_PRECISION_HINT")
        found.add(str(hint.get_type_name()) if hasattr(hint, "get_type_name") else "unknown")
    return found.pop() if len(found) == 1 else "unknown"


def computed_precision(compiled: Any) -> Precision | None:
    """:func:`inference_type` as a unirun precision; None if OpenVINO does not say."""
    return PRECISION_OF.get(inference_type(compiled))


def cache_key(*parts: Mapping[str, Any]) -> str:
    """A short digest of properties, to give each property set its own CACHE_DIR: OpenVINO's
    cache key ignores some properties that change the compiled model (SNIPPETS_MODE)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
