"""unirun options to a TensorRT builder config, by feature detection, never by version string.

TensorRT 10 is weakly typed: precision comes from builder flags (``FP16``, ``BF16``; ``INT8``
for models with Q/DQ nodes). TensorRT 11 removed those flags and is always strongly typed:
precision is the model's own tensor types, so unirun converts the ONNX model to fp16/bf16
before parsing (``_lowp``). ``hasattr(trt.BuilderFlag, "FP16")`` tells the two apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from unirun.errors import OptionsError
from unirun.options import Precision

from .options import TensorRTOptions

_PRECISION_FLAG = {"fp16": "FP16", "bf16": "BF16"}
_HARDWARE = {"ampere_plus": "AMPERE_PLUS", "same_compute_capability": "SAME_COMPUTE_CAPABILITY"}


def strongly_typed(trt: Any) -> bool:
    """True where TensorRT takes precision from the model's types only (TensorRT 11)."""
    return not hasattr(trt.BuilderFlag, "FP16")


def needs_conversion(trt: Any, precision: Precision) -> bool:
    """True if the ONNX model must be converted to ``precision`` before parsing."""
    return precision != "fp32" and strongly_typed(trt)


@dataclass
class Applied:
    """What :func:`configure` set, for the manifest and the log."""

    flags: list[str] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)


def configure(
    trt: Any, config: Any, precision: Precision, options: TensorRTOptions, *, has_qdq: bool
) -> Applied:
    """Apply ``precision`` and ``options`` to ``config`` (an ``IBuilderConfig``)."""
    applied = Applied()
    flags = trt.BuilderFlag
    if not strongly_typed(trt):
        if precision != "fp32":
            _set(config, flags, _PRECISION_FLAG[precision], applied)
        if has_qdq and hasattr(flags, "INT8"):
            # Weakly typed TensorRT 10 honours explicit Q/DQ only with INT8 enabled.
            _set(config, flags, "INT8", applied)
    tf32 = options.tf32 if options.tf32 is not None else (False if precision == "fp32" else None)
    if tf32 is True:
        _set(config, flags, "TF32", applied)
    elif tf32 is False and hasattr(flags, "TF32"):
        config.clear_flag(flags.TF32)
        applied.cleared.append("TF32")
    if options.workspace is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace)
        applied.settings["workspace"] = options.workspace
    if options.builder_optimization_level is not None:
        _require(config, "builder_optimization_level", "builder_optimization_level")
        config.builder_optimization_level = options.builder_optimization_level
        applied.settings["builder_optimization_level"] = options.builder_optimization_level
    if options.hardware_compatibility is not None:
        levels = getattr(trt, "HardwareCompatibilityLevel", None)
        member = _HARDWARE[options.hardware_compatibility]
        if levels is None or not hasattr(levels, member):
            raise OptionsError(
                f"hardware_compatibility={options.hardware_compatibility!r} needs TensorRT 8.6 "
                "or newer (HardwareCompatibilityLevel); this TensorRT lacks it"
            )
        config.hardware_compatibility_level = getattr(levels, member)
        applied.settings["hardware_compatibility"] = options.hardware_compatibility
    return applied


def _set(config: Any, flags: Any, name: str, applied: Applied) -> None:
    if not hasattr(flags, name):
        raise OptionsError(f"this TensorRT has no builder flag {name}")
    config.set_flag(getattr(flags, name))
    applied.flags.append(name)


def _require(config: Any, attribute: str, option: str) -> None:
    if not hasattr(config, attribute):
        raise OptionsError(f"option {option} needs a TensorRT whose builder config has {attribute}")
