"""unirun options → TensorRT builder config, for TensorRT 10 (weakly typed, precision flags) and
TensorRT 11 (strongly typed, no precision flags).

TensorRT cannot be installed on the machines these tests run on, so this module uses small test
doubles of TensorRT's Python API: namespaces with the enum members each version has (from the
10.x and 11.4 bindings, see the reference notes) and a builder config that records the calls.
They are used ONLY for these pure translation tests; everything that builds or runs an engine is
in test_integration.py, which needs the real TensorRT and a GPU.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from unirun.errors import OptionsError
from unirun_tensorrt._config import configure, needs_conversion, strongly_typed
from unirun_tensorrt.options import TensorRTOptions

_COMMON = ("DEBUG", "GPU_FALLBACK", "DISABLE_TIMING_CACHE", "TF32", "SPARSE_WEIGHTS",
           "VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME")  # fmt: skip


def fake_trt(major: int) -> Any:
    flags = list(_COMMON)
    if major == 10:  # removed in 11: precision now comes from the model's types
        flags += ["FP16", "BF16", "INT8", "FP8", "INT4", "OBEY_PRECISION_CONSTRAINTS"]
    return SimpleNamespace(
        BuilderFlag=SimpleNamespace(**{f: f"BuilderFlag.{f}" for f in flags}),
        MemoryPoolType=SimpleNamespace(WORKSPACE="MemoryPoolType.WORKSPACE"),
        HardwareCompatibilityLevel=SimpleNamespace(
            NONE="NONE", AMPERE_PLUS="AMPERE_PLUS", SAME_COMPUTE_CAPABILITY="SAME_CC"
        ),
    )


class RecordingConfig:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.builder_optimization_level = 3
        self.hardware_compatibility_level = "NONE"

    def set_flag(self, flag: str) -> None:
        self.calls.append(("set_flag", flag))

    def clear_flag(self, flag: str) -> None:
        self.calls.append(("clear_flag", flag))

    def set_memory_pool_limit(self, pool: str, size: int) -> None:
        self.calls.append(("set_memory_pool_limit", pool, size))


@pytest.mark.parametrize(("major", "typed"), [(10, False), (11, True)])
def test_strong_typing_is_detected_from_the_flags_not_the_version(major: int, typed: bool) -> None:
    trt = fake_trt(major)
    trt.__version__ = "99.0"  # the version string plays no part
    assert strongly_typed(trt) is typed
    assert needs_conversion(trt, "fp16") is typed
    assert needs_conversion(trt, "bf16") is typed
    assert needs_conversion(trt, "fp32") is False


@pytest.mark.parametrize(("precision", "flag"), [("fp16", "FP16"), ("bf16", "BF16")])
def test_tensorrt_10_sets_the_precision_flag(precision: Any, flag: str) -> None:
    config = RecordingConfig()
    applied = configure(fake_trt(10), config, precision, TensorRTOptions(), has_qdq=False)
    assert ("set_flag", f"BuilderFlag.{flag}") in config.calls
    assert applied.flags == [flag]
    # fp16/bf16 builds leave TF32 at TensorRT's default for the layers that stay fp32
    assert not any(c[1] == "BuilderFlag.TF32" for c in config.calls)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_tensorrt_11_sets_no_precision_flag(precision: Any) -> None:
    config = RecordingConfig()
    applied = configure(fake_trt(11), config, precision, TensorRTOptions(), has_qdq=True)
    assert applied.flags == []
    assert [c for c in config.calls if c[0] == "set_flag"] == []


@pytest.mark.parametrize("major", [10, 11])
def test_fp32_is_exact_fp32_tf32_cleared(major: int) -> None:
    config = RecordingConfig()
    applied = configure(fake_trt(major), config, "fp32", TensorRTOptions(), has_qdq=False)
    assert config.calls == [("clear_flag", "BuilderFlag.TF32")]
    assert applied.cleared == ["TF32"]


def test_tf32_on_request() -> None:
    config = RecordingConfig()
    configure(fake_trt(11), config, "fp32", TensorRTOptions(tf32=True), has_qdq=False)
    assert config.calls == [("set_flag", "BuilderFlag.TF32")]


def test_qdq_models_enable_int8_on_tensorrt_10_only() -> None:
    ten, eleven = RecordingConfig(), RecordingConfig()
    configure(fake_trt(10), ten, "fp32", TensorRTOptions(), has_qdq=True)
    configure(fake_trt(11), eleven, "fp32", TensorRTOptions(), has_qdq=True)
    assert ("set_flag", "BuilderFlag.INT8") in ten.calls
    assert not any("INT8" in str(c) for c in eleven.calls)


@pytest.mark.parametrize("major", [10, 11])
def test_workspace_level_and_hardware_compatibility(major: int) -> None:
    config = RecordingConfig()
    options = TensorRTOptions(
        workspace=1 << 30, builder_optimization_level=5, hardware_compatibility="ampere_plus"
    )
    applied = configure(fake_trt(major), config, "fp32", options, has_qdq=False)
    assert ("set_memory_pool_limit", "MemoryPoolType.WORKSPACE", 1 << 30) in config.calls
    assert config.builder_optimization_level == 5
    assert config.hardware_compatibility_level == "AMPERE_PLUS"
    assert applied.settings == {
        "workspace": 1 << 30,
        "builder_optimization_level": 5,
        "hardware_compatibility": "ampere_plus",
    }


def test_same_compute_capability() -> None:
    config = RecordingConfig()
    options = TensorRTOptions(hardware_compatibility="same_compute_capability")
    configure(fake_trt(10), config, "fp32", options, has_qdq=False)
    assert config.hardware_compatibility_level == "SAME_CC"


def test_defaults_leave_tensorrt_defaults_alone() -> None:
    config = RecordingConfig()
    configure(fake_trt(10), config, "fp16", TensorRTOptions(), has_qdq=False)
    assert config.builder_optimization_level == 3
    assert config.hardware_compatibility_level == "NONE"
    assert not any(c[0] == "set_memory_pool_limit" for c in config.calls)


def test_missing_features_are_option_errors() -> None:
    trt = fake_trt(10)
    del trt.HardwareCompatibilityLevel
    with pytest.raises(OptionsError, match="HardwareCompatibilityLevel"):
        configure(
            trt,
            RecordingConfig(),
            "fp32",
            TensorRTOptions(hardware_compatibility="ampere_plus"),
            has_qdq=False,
        )
    config = RecordingConfig()
    del config.builder_optimization_level
    with pytest.raises(OptionsError, match="builder_optimization_level"):
        configure(trt, config, "fp32", TensorRTOptions(builder_optimization_level=1), has_qdq=False)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"workspace": 1024}, "workspace"),
        ({"builder_optimization_level": 6}, "builder_optimization_level"),
        ({"hardware_compatibility": "turing_plus"}, "hardware_compatibility"),
        ({"fp16": True}, "fp16"),
        ({"profiles": [{"x": "big"}]}, "profiles"),
    ],
)
def test_options_are_validated(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        TensorRTOptions.model_validate(options)


def test_profiles_option_accepts_shapes_like_shapes_does() -> None:
    options = TensorRTOptions(profiles=[{"x": (2, 3)}, {"x": ((1, 3), (4, 3), (8, 3))}])
    assert options.profiles[0]["x"].is_fixed and options.profiles[0]["x"].min == (2, 3)
    assert options.profiles[1]["x"].opt == (4, 3)
    # survives the JSON round trip the manifest makes
    again = TensorRTOptions.model_validate(options.model_dump(mode="json"))
    assert again == options
