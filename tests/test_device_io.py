"""Device tensors through ``Model``: routing, checks, ``outputs="device"``, and the contract
(``Capabilities.device_io``, ``infer_device``) the core enforces on plugins.

The engines here are CPU-only, so the path is driven by a contract test backend: it declares a
``cuda:0`` device with device I/O whose "device memory" is host memory, and runs the model on
ONNX's reference evaluator. That checks what the core does (which feeds take the device path,
what is refused, what comes back, what is a plugin bug); it says nothing about a real GPU —
the GPU engines' own tests (``plugins/tensorrt``, ``plugins/onnxruntime``) and
``bench/gpu_check.py`` do, on a GPU machine."""

from __future__ import annotations

import ctypes
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import unirun
from unirun._reference import ReferenceBackend, ReferenceExecutable
from unirun.backend import DeviceInfo, LoadRequest, ThreadSafety
from unirun.device import Device
from unirun.device_tensor import DeviceTensor
from unirun.dtypes import DType
from unirun.errors import (
    InferenceError,
    InputError,
    ModelClosedError,
    OptionsError,
    PluginIncompatibleError,
)

GPU = Device("cuda", 0)


def _image(batch: int = 2) -> np.ndarray[Any, Any]:
    return np.random.default_rng(batch).standard_normal((batch, 3, 8, 8)).astype(np.float32)


def _on_gpu(array: np.ndarray[Any, Any], device: Device = GPU) -> DeviceTensor:
    """Host memory labelled as device memory (what the test backend reads)."""
    array = np.ascontiguousarray(array)
    return DeviceTensor(
        array.ctypes.data, array.shape, DType.from_numpy(array.dtype), device, owner=array
    )


def _read(tensor: DeviceTensor) -> np.ndarray[Any, Any]:
    raw = ctypes.string_at(tensor.pointer, tensor.nbytes) if tensor.nbytes else b""
    return np.frombuffer(raw, np.uint8).view(tensor.dtype.numpy).reshape(tensor.shape).copy()


class HostGpuExecutable:
    """The reference evaluator behind ``infer`` and ``infer_device``; records what it got."""

    def __init__(self, base: ReferenceExecutable) -> None:
        self.inputs, self.outputs, self._base = base.inputs, base.outputs, base
        self.calls: list[tuple[dict[str, DeviceTensor], str]] = []

    def infer(self, feeds: Mapping[str, Any]) -> Sequence[Any]:
        return self._base.infer(feeds)

    def infer_device(
        self, feeds: Mapping[str, DeviceTensor], outputs: str
    ) -> Sequence[DeviceTensor]:
        self.calls.append((dict(feeds), outputs))
        results = self._base.infer({name: _read(t) for name, t in feeds.items()})
        if outputs == "host":
            return [DeviceTensor.from_numpy(np.array(r)) for r in results]
        return [_on_gpu(np.array(r)) for r in results]

    def close(self) -> None:
        self._base.close()


class HostGpu(ReferenceBackend):
    name = "hostgpu"
    capabilities = dataclasses.replace(
        ReferenceBackend.capabilities, device_kinds=("cuda",), device_io=("cuda",)
    )
    executable: type = HostGpuExecutable
    last: Any = None

    def devices(self) -> list[DeviceInfo]:
        return [DeviceInfo(GPU, "host memory labelled cuda:0 (contract test)")]

    def load(self, request: LoadRequest) -> Any:
        type(self).last = self.executable(super().load(request))
        return type(self).last


@pytest.fixture
def backends() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        unirun.unregister_backend(name)


def _load(backends: list[str], backend: Any, path: Path, **kwargs: Any) -> unirun.Model:
    if backend.name not in backends:
        unirun.register_backend(backend)
        backends.append(backend.name)
    return unirun.load(path, backend=backend.name, device="cuda", cache=False, **kwargs)


@pytest.fixture
def gpu_model(backends: list[str], cnn_path: Path) -> Iterator[unirun.Model]:
    with _load(backends, HostGpu(), cnn_path) as model:
        yield model


@pytest.fixture
def expected(cnn_path: Path) -> np.ndarray[Any, Any]:
    with unirun.load(cnn_path, backend="reference") as model:
        return model(_image())["logits"]


# -- the path ------------------------------------------------------------------------------------


def test_device_feeds_take_the_device_path_and_give_numpy(
    gpu_model: unirun.Model, expected: np.ndarray[Any, Any]
) -> None:
    out = gpu_model({"image": _on_gpu(_image())})["logits"]
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, expected)
    ((feeds, place),) = HostGpu.last.calls
    assert place == "host" and feeds["image"].device == GPU


def test_host_feeds_stay_on_the_host_path(gpu_model: unirun.Model) -> None:
    gpu_model(_image())
    assert HostGpu.last.calls == []


def test_outputs_device_returns_tensors_on_the_model_device(
    gpu_model: unirun.Model, expected: np.ndarray[Any, Any]
) -> None:
    for feed in (_image(), _on_gpu(_image())):  # host feeds are copied in by the plugin
        out = gpu_model(feed, outputs="device")["logits"]
        assert isinstance(out, DeviceTensor)
        assert (out.device, out.shape, out.dtype, out.stream) == (GPU, (2, 10), DType.FLOAT32, None)
        assert out.__dlpack_device__() == (2, 0)
        np.testing.assert_array_equal(_read(out), expected)
    feeds, place = HostGpu.last.calls[0]
    assert place == "device" and feeds["image"].on_host


def test_producers_order_their_work_before_the_legacy_stream(gpu_model: unirun.Model) -> None:
    """A DLPack producer is asked to order its pending work before CUDA's legacy default stream
    (1), and the plugin is told to wait on it; a CUDA array interface producer names its own."""

    class Producer:
        def __init__(self, tensor: DeviceTensor) -> None:
            self.tensor, self.streams = tensor, []

        def __dlpack_device__(self) -> tuple[int, int]:
            return (2, 0)

        def __dlpack__(self, *, stream: int | None = None) -> Any:
            self.streams.append(stream)
            return self.tensor.__dlpack__()

    producer = Producer(_on_gpu(_image()))
    gpu_model(producer, outputs="device")
    assert producer.streams == [1]
    assert HostGpu.last.calls[-1][0]["image"].stream == 1

    class Interface:
        def __init__(self, array: np.ndarray[Any, Any]) -> None:
            self.array = array
            self.__cuda_array_interface__ = {
                "shape": array.shape,
                "typestr": "<f4",
                "data": (array.ctypes.data, False),
                "version": 3,
                "stream": 0x5EED,
            }

    out = gpu_model({"image": Interface(_image())})
    assert out["logits"].shape == (2, 10)
    assert HostGpu.last.calls[-1][0]["image"].stream == 0x5EED


def test_mixed_host_and_device_feeds(backends: list[str], multi_path: Path) -> None:
    with _load(backends, HostGpu(), multi_path) as model:
        x = np.arange(6, dtype=np.float32).reshape(2, 3)
        mask = np.array([[True, False, True]] * 2)
        host = unirun.load(multi_path, backend="reference")({"x": x, "mask": mask})
        out = model({"x": _on_gpu(x), "mask": mask})
        for name, value in host.items():
            np.testing.assert_array_equal(out[name], value)
        feeds, _ = HostGpu.last.calls[-1]
        assert feeds["x"].device == GPU and feeds["mask"].on_host


# -- feeds the core refuses -----------------------------------------------------------------------


def test_device_feeds_are_checked_like_host_feeds(gpu_model: unirun.Model) -> None:
    with pytest.raises(InputError, match=r"'image' lives on cuda:1, but the model runs on cuda:0"):
        gpu_model(_on_gpu(_image(), Device("cuda", 1)))
    with pytest.raises(InputError, match=r"expects float32\[N, 3, 8, 8\], got dtype float16"):
        gpu_model(_on_gpu(_image().astype(np.float16)))
    with pytest.raises(InputError, match=r"got shape \(2, 3, 9, 8\) \(dimension 2\)"):
        gpu_model(_on_gpu(np.zeros((2, 3, 9, 8), np.float32)))
    with pytest.raises(InputError, match="missing input 'image'"):
        gpu_model({"img": _on_gpu(_image())}, outputs="device")
    assert HostGpu.last.calls == []


def test_cpu_engines_refuse_device_tensors_saying_where_they_live(cnn_path: Path) -> None:
    with unirun.load(cnn_path, backend="onnxruntime") as model:
        with pytest.raises(InputError, match=r"'image' lives on a device \(cuda:1\).*\.cpu\(\)"):
            model(_on_gpu(_image(), Device("cuda", 1)))

        class Interface:
            def __init__(self) -> None:
                self.__cuda_array_interface__ = {"shape": (1,), "typestr": "<f4", "data": (0, 0)}

        with pytest.raises(InputError, match=r"'image' lives on a device \(cuda\)"):
            model(Interface())
        with pytest.raises(OptionsError, match=r"'onnxruntime' on cpu returns host memory only"):
            model(_image(), outputs="device")


def test_outputs_takes_numpy_or_device(gpu_model: unirun.Model) -> None:
    with pytest.raises(OptionsError, match=r"outputs='gpu' is not one of 'numpy', 'device'"):
        gpu_model(_image(), outputs="gpu")  # type: ignore[call-overload]


def test_a_closed_model_refuses_the_device_path(backends: list[str], cnn_path: Path) -> None:
    model = _load(backends, HostGpu(), cnn_path)
    model.close()
    with pytest.raises(ModelClosedError):
        model(_on_gpu(_image()), outputs="device")


# -- the contract ----------------------------------------------------------------------------------


def test_device_io_must_name_a_declared_kind_unirun_exchanges(backends: list[str]) -> None:
    class Undeclared(HostGpu):
        name = "undeclared"
        capabilities = dataclasses.replace(
            HostGpu.capabilities, device_kinds=("cuda", "cpu"), device_io=("cuda", "cpu")
        )

    with pytest.raises(PluginIncompatibleError, match=r"device_io for 'cpu'; unirun exchanges"):
        unirun.register_backend(Undeclared())

    class NotAKind(HostGpu):
        name = "notakind"
        capabilities = dataclasses.replace(HostGpu.capabilities, device_io=("npu",))

    with pytest.raises(
        PluginIncompatibleError, match=r"'npu', which is not among its device_kinds"
    ):
        unirun.register_backend(NotAKind())


def test_an_executable_without_infer_device_is_a_plugin_bug(
    backends: list[str], cnn_path: Path
) -> None:
    class Plain(HostGpuExecutable):
        infer_device = None  # type: ignore[assignment]

    class Missing(HostGpu):
        name = "missing"
        executable = Plain

    with pytest.raises(PluginIncompatibleError, match=r"'missing' has a infer_device attribute"):
        _load(backends, Missing(), cnn_path)


def test_infer_device_with_another_signature_is_refused_at_load(
    backends: list[str], cnn_path: Path
) -> None:
    class OldStyle(HostGpuExecutable):
        def infer_device(self, feeds: Any) -> Any:  # type: ignore[override]
            raise AssertionError("never called")

    class Old(HostGpu):
        name = "oldstyle"
        executable = OldStyle

    with pytest.raises(
        PluginIncompatibleError, match=r"has infer_device\(feeds\), which does not fit.*outputs"
    ):
        _load(backends, Old(), cnn_path)


def test_a_context_without_infer_device_is_refused_when_first_used(
    backends: list[str], cnn_path: Path
) -> None:
    class Pooled:
        def __init__(self, base: ReferenceExecutable) -> None:
            self.inputs, self.outputs, self._base = base.inputs, base.outputs, base

        def create_context(self) -> ReferenceExecutable:
            return self._base

        def close(self) -> None:
            self._base.close()

    class Contexts(HostGpu):
        name = "contexts"
        capabilities = dataclasses.replace(
            HostGpu.capabilities, thread_safety=ThreadSafety.CONTEXTS
        )
        executable = Pooled

    with _load(backends, Contexts(), cnn_path) as model:
        assert model(_image())["logits"].shape == (2, 10)  # the host path is unaffected
        with pytest.raises(
            PluginIncompatibleError, match=r"ReferenceExecutable has no infer_device"
        ):
            model(_on_gpu(_image()))


def test_outputs_in_a_feed_or_in_the_wrong_place_are_plugin_bugs(
    backends: list[str], cnn_path: Path
) -> None:
    class Aliasing(HostGpuExecutable):
        def infer_device(self, feeds: Mapping[str, DeviceTensor], outputs: str) -> Any:
            feed = feeds["image"]
            return [DeviceTensor(feed.pointer, (2, 10), DType.FLOAT32, GPU, owner=feed)]

    class Aliases(HostGpu):
        name = "aliases"
        executable = Aliasing

    with (
        _load(backends, Aliases(), cnn_path) as model,
        pytest.raises(InferenceError, match=r"output 'logits' in the memory of an input"),
    ):
        model(_on_gpu(_image()), outputs="device")

    class HostOnly(HostGpuExecutable):
        def infer_device(self, feeds: Mapping[str, DeviceTensor], outputs: str) -> Any:
            return super().infer_device(feeds, "host")

    class Stays(HostGpu):
        name = "stays"
        executable = HostOnly

    with (
        _load(backends, Stays(), cnn_path) as model,
        pytest.raises(InferenceError, match=r"'logits' on cpu for outputs='device'"),
    ):
        model(_on_gpu(_image()), outputs="device")
