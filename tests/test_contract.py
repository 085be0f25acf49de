"""The core enforces the plugin contract: signatures when a plugin is loaded, declared dtypes,
device kinds, dynamic-shape modes, thread safety and options before the engine sees anything;
engine exceptions are mapped once; registration never shadows a plugin silently."""

from __future__ import annotations

import dataclasses
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import unirun
from unirun import _registry
from unirun._calls import MESSAGE_LIMIT
from unirun._reference import ReferenceBackend, ReferenceExecutable
from unirun.backend import (
    Capabilities,
    DeviceInfo,
    DynamicShapes,
    LoadRequest,
    ThreadSafety,
)
from unirun.device import DEVICE_KINDS, GPU_KINDS, Device
from unirun.dtypes import DType
from unirun.errors import (
    CompileError,
    DeviceError,
    InferenceError,
    OptionsError,
    PluginIncompatibleError,
    UnsupportedModelError,
)
from unirun.testing import models


@pytest.fixture
def registered() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        unirun.unregister_backend(name)


def _register(names: list[str], backend: Any, **kwargs: Any) -> None:
    unirun.register_backend(backend, **kwargs)
    names.append(kwargs.get("name") or backend.name)


# -- signatures and shapes, checked when the plugin is loaded --------------------------------


def test_a_load_with_the_api1_signature_is_refused_naming_the_method(
    registered: list[str],
) -> None:
    class OldLoad(ReferenceBackend):
        name = "oldload"

        def load(self, artifact: Any, device: Any, cache_dir: Any = None) -> Any:  # type: ignore[override]
            raise AssertionError("never called")

    with pytest.raises(PluginIncompatibleError, match=r"'oldload' has load\(artifact, device"):
        unirun.register_backend(OldLoad())
    assert "oldload" not in {i.name for i in unirun.backends()}


def test_a_lazily_registered_plugin_is_checked_when_first_used(
    registered: list[str], cnn_path: Path
) -> None:
    class NoRequest(ReferenceBackend):
        name = "norequest"

        def compile(self, model: Any) -> Any:  # type: ignore[override]
            raise AssertionError("never called")

    _register(registered, NoRequest)  # a class: not instantiated, not checked yet
    with pytest.raises(
        PluginIncompatibleError, match=r"compile\(model\).*compile\(model, request\)"
    ):
        unirun.load(cnn_path, backend="norequest")
    info = {i.name: i for i in unirun.backends()}["norequest"]
    assert not info.available and "compile(model)" in info.reason


def test_an_optional_method_with_a_wrong_signature_is_refused(registered: list[str]) -> None:
    class BadMapper(ReferenceBackend):
        name = "badmapper"

        def map_error(self, exc: Any) -> Any:  # type: ignore[override]
            return None

    with pytest.raises(PluginIncompatibleError, match=r"map_error\(exc, stage\)"):
        unirun.register_backend(BadMapper())


def test_capabilities_must_be_the_contract_type(registered: list[str]) -> None:
    class Plain(ReferenceBackend):
        name = "plaincaps"
        capabilities: ClassVar[Any] = {"device_kinds": ("cpu",)}

    with pytest.raises(PluginIncompatibleError, match=r"not unirun\.backend\.Capabilities"):
        unirun.register_backend(Plain())


def test_a_string_dynamic_shapes_mode_is_read_as_the_enum() -> None:
    caps = Capabilities(device_kinds=("cpu",), dynamic_shapes="bounded")  # type: ignore[arg-type]
    assert caps.dynamic_shapes is DynamicShapes.BOUNDED
    with pytest.raises(ValueError, match="dynamic_shapes must be one of 'free', 'bounded'"):
        Capabilities(device_kinds=("cpu",), dynamic_shapes="sometimes")  # type: ignore[arg-type]


# -- registration ------------------------------------------------------------------------------


def test_register_backend_never_shadows_an_installed_plugin(
    registered: list[str], cnn_path: Path
) -> None:
    class Impostor(ReferenceBackend):
        name = "reference"

    with pytest.raises(PluginIncompatibleError, match="already an installed plugin"):
        unirun.register_backend(Impostor())
    _register(registered, Impostor(), replace=True)  # explicit: allowed
    with unirun.load(cnn_path, backend="reference", cache=False) as model:
        assert model.backend == "reference"


def test_register_backend_accepts_a_lazy_path(
    registered: list[str], cnn_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "lazy_engine.py").write_text(
        textwrap.dedent("""
        from unirun._reference import ReferenceBackend
        IMPORTED = True
        class LazyBackend(ReferenceBackend):
            name = "lazy"
        """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginIncompatibleError, match="needs name="):
        unirun.register_backend("lazy_engine:LazyBackend")
    _register(registered, "lazy_engine:LazyBackend", name="lazy")
    assert "lazy_engine" not in sys.modules  # nothing imported until used
    with unirun.load(cnn_path, backend="lazy", cache=False) as model:
        assert model.backend == "lazy"
    assert "lazy_engine" in sys.modules
    with pytest.raises(PluginIncompatibleError, match=r"'package\.module:Factory'"):
        unirun.register_backend("no_colon_here", name="x")


# -- declarations enforced before the engine sees the model ------------------------------------


class _Counting(ReferenceBackend):
    """A reference backend that counts compile() calls: enforcement happens before them."""

    compiles = 0

    def compile(self, model: Any, request: Any) -> Any:
        type(self).compiles += 1
        return super().compile(model, request)


def test_an_undeclared_dtype_is_refused_before_compile(
    registered: list[str], tmp_path: Path
) -> None:
    class FloatOnly(_Counting):
        name = "floatonly"
        capabilities = dataclasses.replace(ReferenceBackend.capabilities, dtypes=(DType.FLOAT32,))

    _register(registered, FloatOnly())
    path = tmp_path / "emb.onnx"
    import onnx

    onnx.save(models.embedding_model(), str(path))
    with pytest.raises(UnsupportedModelError, match=r"'floatonly' has no tensors of type int64"):
        unirun.load(path, backend="floatonly", cache=False)
    assert FloatOnly.compiles == 0


def test_devices_of_an_undeclared_kind_are_refused(registered: list[str], cnn_path: Path) -> None:
    class Liar(ReferenceBackend):
        name = "liar"

        def devices(self) -> list[DeviceInfo]:
            return [DeviceInfo(Device("cuda", 0), "not declared")]

    _register(registered, Liar())
    with pytest.raises(PluginIncompatibleError, match=r"'liar' lists device\(s\) cuda:0 of a kind"):
        unirun.load(cnn_path, backend="liar", cache=False)


def test_static_backends_need_fixed_shapes_before_compile(
    registered: list[str], cnn_path: Path
) -> None:
    class Static(_Counting):
        name = "staticonly"
        capabilities = dataclasses.replace(
            ReferenceBackend.capabilities, dynamic_shapes=DynamicShapes.STATIC
        )

    _register(registered, Static())
    with pytest.raises(OptionsError, match="needs a fixed shape for every dynamic input"):
        unirun.load(cnn_path, backend="staticonly", cache=False)
    assert Static.compiles == 0
    shapes = {"image": (2, 3, 8, 8)}
    with unirun.load(cnn_path, backend="staticonly", shapes=shapes, cache=False) as model:
        assert model({"image": np.zeros((2, 3, 8, 8), np.float32)})["logits"].shape == (2, 10)


def test_a_contexts_backend_without_create_context_is_a_plugin_bug(
    registered: list[str], cnn_path: Path
) -> None:
    class NoContexts(ReferenceBackend):
        name = "nocontexts"
        capabilities = dataclasses.replace(
            ReferenceBackend.capabilities, thread_safety=ThreadSafety.CONTEXTS
        )

    _register(registered, NoContexts())
    with pytest.raises(PluginIncompatibleError, match=r"has no create_context\(\)"):
        unirun.load(cnn_path, backend="nocontexts", cache=False)


def test_a_contexts_backend_implements_create_context_only(
    registered: list[str], cnn_path: Path
) -> None:
    class Pooled(ReferenceBackend):
        name = "pooled"
        capabilities = dataclasses.replace(
            ReferenceBackend.capabilities, thread_safety=ThreadSafety.CONTEXTS
        )

        def load(self, request: LoadRequest) -> Any:
            return PooledExecutable(super().load(request))

    class PooledExecutable:
        def __init__(self, base: ReferenceExecutable) -> None:
            self.inputs, self.outputs, self._base = base.inputs, base.outputs, base

        def create_context(self) -> ReferenceExecutable:
            return self._base

        def close(self) -> None:
            self._base.close()

    _register(registered, Pooled())
    with unirun.load(cnn_path, backend="pooled", cache=False) as model:
        out = model(np.ones((1, 3, 8, 8), np.float32))
        assert out["logits"].shape == (1, 10)


# -- options reach compile and load as one validated instance ---------------------------------


def test_plugin_options_are_validated_once_and_reach_compile_and_load(
    registered: list[str], cnn_path: Path
) -> None:
    from pydantic import BaseModel, ConfigDict

    class Knobs(BaseModel):
        model_config = ConfigDict(frozen=True, extra="forbid")
        level: int = 1

    seen: list[Any] = []

    class WithOptions(ReferenceBackend):
        name = "withoptions"
        options_model = Knobs

        def compile(self, model: Any, request: Any) -> Any:
            seen.append(("compile", request.plugin_options))
            return super().compile(model, request)

        def load(self, request: LoadRequest) -> Any:
            seen.append(("load", request.plugin_options))
            return super().load(request)

    _register(registered, WithOptions())
    with unirun.load(cnn_path, backend="withoptions", options={"level": 3}, cache=False):
        pass
    assert seen == [("compile", Knobs(level=3)), ("load", Knobs(level=3))]
    with pytest.raises(OptionsError, match="level"):
        unirun.load(cnn_path, backend="withoptions", options={"level": "high"}, cache=False)
    with pytest.raises(OptionsError, match="mapping of option name to value"):
        unirun.load(cnn_path, backend="withoptions", options=5, cache=False)  # type: ignore[arg-type]


# -- errors mapped once, in the core ------------------------------------------------------------


def test_engine_errors_go_through_the_plugins_mapper_and_are_trimmed(
    registered: list[str], cnn_path: Path
) -> None:
    stages: list[str] = []

    class Exploding(ReferenceBackend):
        name = "exploding"

        def compile(self, model: Any, request: Any) -> Any:
            raise RuntimeError("engine said no: " + "x" * 5000)

        def map_error(self, exc: BaseException, stage: Any) -> Any:
            stages.append(stage)
            return UnsupportedModelError(f"mapped: {exc}") if stage == "compile" else None

    _register(registered, Exploding())
    with pytest.raises(UnsupportedModelError) as info:
        unirun.load(cnn_path, backend="exploding", cache=False)
    assert stages == ["compile"]
    assert str(info.value).startswith("mapped: engine said no")
    assert len(str(info.value)) <= MESSAGE_LIMIT + 2
    assert isinstance(info.value.__cause__, RuntimeError)


def test_without_a_mapper_each_stage_has_its_default_type(
    registered: list[str], cnn_path: Path
) -> None:
    class RunFails(ReferenceBackend):
        name = "runfails"

        def load(self, request: LoadRequest) -> Any:
            executable = super().load(request)
            executable.infer = lambda feeds: 1 / 0  # type: ignore[method-assign]
            return executable

    class CompileFails(ReferenceBackend):
        name = "compilefails"

        def compile(self, model: Any, request: Any) -> Any:
            raise OSError("disk on fire")

    _register(registered, RunFails())
    _register(registered, CompileFails())
    with unirun.load(cnn_path, backend="runfails", cache=False) as model:
        with pytest.raises(InferenceError, match="ZeroDivisionError") as info:
            model(np.ones((1, 3, 8, 8), np.float32))
        assert isinstance(info.value.__cause__, ZeroDivisionError)
    with pytest.raises(CompileError, match=r"'compilefails' failed to compile.*disk on fire"):
        unirun.load(cnn_path, backend="compilefails", cache=False)


# -- device kinds a plugin adds -----------------------------------------------------------------


def test_a_plugin_adds_its_own_device_kind(registered: list[str], cnn_path: Path) -> None:
    class OnDsp(ReferenceBackend):
        name = "ondsp"
        capabilities = dataclasses.replace(
            ReferenceBackend.capabilities,
            device_kinds=("dsp",),
            new_device_kinds={"dsp": "a test signal processor"},
            priority={"dsp": 10},
        )

        def devices(self) -> list[DeviceInfo]:
            return [DeviceInfo(Device("dsp", 0), "test DSP", identity="dsp-v1")]

    try:
        _register(registered, OnDsp())
        assert DEVICE_KINDS["dsp"] == "a test signal processor"
        with unirun.load(cnn_path, device="dsp", cache=False) as model:
            assert (model.backend, str(model.device)) == ("ondsp", "dsp:0")
            assert model.artifact.manifest.device_identity == "dsp-v1"
        with pytest.raises(DeviceError, match="unknown device kind 'dsq'"):
            Device.parse("dsq")
    finally:
        DEVICE_KINDS.pop("dsp", None)


def test_an_undescribed_device_kind_is_refused(registered: list[str]) -> None:
    class Mystery(ReferenceBackend):
        name = "mystery"
        capabilities = dataclasses.replace(ReferenceBackend.capabilities, device_kinds=("qpu",))

    with pytest.raises(PluginIncompatibleError, match="'qpu' that unirun does not know"):
        unirun.register_backend(Mystery())


def test_a_gpu_request_matches_any_gpu_kind() -> None:
    assert Device.parse("gpu").matches(Device("cuda", 0))
    assert Device.parse("gpu:1").matches(Device("cuda", 1))
    assert not Device.parse("gpu:1").matches(Device("cuda", 0))
    assert not Device.parse("gpu").matches(Device("cpu"))
    assert not Device.parse("cuda").matches(Device("gpu", 0))  # an Intel GPU is not CUDA
    assert "cuda" in GPU_KINDS


def test_entry_points_are_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    _registry._reset()
    calls = []
    real = _registry.entry_points

    def counting(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(_registry, "entry_points", counting)
    unirun.backends()
    unirun.backends()
    assert len(calls) == 1
    _registry._reset()


def test_a_device_only_an_unranked_backend_drives_says_to_name_it(
    registered: list[str], cnn_path: Path
) -> None:
    class Unranked(ReferenceBackend):
        name = "unranked"
        capabilities = dataclasses.replace(
            ReferenceBackend.capabilities,
            device_kinds=("npu",),
            priority={},
        )

        def devices(self) -> list[DeviceInfo]:
            return [DeviceInfo(Device("npu", 0))]

    _register(registered, Unranked())
    with pytest.raises(DeviceError, match=r"unranked can run on device npu but never is chosen"):
        unirun.load(cnn_path, device="npu", cache=False)


def test_a_portable_payload_records_no_identity(
    registered: list[str], cnn_path: Path, tmp_path: Path
) -> None:
    """A payload that runs on other devices of the kind (a hardware-compatible TensorRT plan)
    carries no identity, so the core leaves the decision to the plugin's load()."""

    class Portable(ReferenceBackend):
        name = "portable"

        def devices(self) -> list[DeviceInfo]:
            return [DeviceInfo(Device("cpu"), "", identity="chip-a")]

        def compile(self, model: Any, request: Any) -> Any:
            return dataclasses.replace(super().compile(model, request), portable=True)

    _register(registered, Portable())
    saved = unirun.compile(cnn_path, backend="portable").save(tmp_path / "p")
    assert unirun.Artifact.open(saved).manifest.device_identity == ""
