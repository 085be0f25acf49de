"""The CUDA parts of the plugin on a real GPU, without TensorRT: checked calls, growing device
buffers, pinned staging, streams, and device tensors from torch and cupy. They skip, with the
reason, on machines without a GPU; ``bench/gpu_check.py`` runs them on one."""

from __future__ import annotations

import numpy as np
import pytest

from unirun import DType
from unirun.device_tensor import from_object
from unirun.errors import DeviceError, InferenceError
from unirun_tensorrt import _cuda


def to_host(ptr: int, nbytes: int, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:  # type: ignore[type-arg]
    stream = _cuda.Stream()
    pinned = _cuda.PinnedBuffer()
    view = pinned.view(nbytes)
    _cuda.copy_to_host(pinned.ptr, ptr, nbytes, stream)
    stream.synchronize()
    out = view.view(dtype).reshape(shape).copy()
    pinned.free()
    stream.close()
    return out


def test_device_listing(gpu: int) -> None:
    gpus = _cuda.gpus()
    assert gpus and gpus[0].ordinal == 0
    assert gpus[0].name and gpus[0].compute_capability.count(".") == 1
    assert gpus[0].identity.startswith(gpus[0].name)


def test_buffers_are_reused_and_grown(gpu: int) -> None:
    buffer = _cuda.DeviceBuffer()
    first = buffer.ensure(1024)
    assert buffer.ensure(512) == first  # big enough: reused
    assert buffer.ensure(1 << 20) and buffer.capacity == 1 << 20
    buffer.free()
    assert buffer.ptr == 0


def test_pinned_staging_round_trip(gpu: int) -> None:
    data = np.random.default_rng(0).standard_normal((64, 33)).astype(np.float32)
    stream = _cuda.Stream()
    device, pinned = _cuda.DeviceBuffer(), _cuda.PinnedBuffer()
    np.copyto(pinned.view(data.nbytes), data.reshape(-1).view(np.uint8))
    _cuda.copy_to_device(device.ensure(data.nbytes), pinned.ptr, data.nbytes, stream)
    stream.synchronize()
    np.testing.assert_array_equal(to_host(device.ptr, data.nbytes, data.dtype, data.shape), data)
    other = _cuda.Stream()
    other.wait_for(stream.handle)
    other.synchronize()
    device.free()
    pinned.free()
    stream.close()
    other.close()


def test_handed_over_memory_is_the_callers(gpu: int) -> None:
    buffer = _cuda.DeviceBuffer()
    ptr = buffer.ensure(4096)
    owned = _cuda.Owned(buffer)
    assert (owned.ptr, buffer.ptr) == (ptr, 0)
    assert buffer.ensure(16) != 0  # the buffer allocates anew
    owned.free()
    owned.free()  # once only
    buffer.free()


def test_cuda_errors_with_a_gpu(gpu: int) -> None:
    with pytest.raises(DeviceError, match="cudaErrorInvalidDevice"):
        _cuda.set_device(_cuda.device_count() + 7)
    with pytest.raises(InferenceError, match="cudaErrorMemoryAllocation"):
        _cuda.DeviceBuffer().ensure(1 << 62)


def test_torch_cuda_tensors(gpu: int) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("this torch build has no CUDA")
    for dtype, kind in ((torch.float32, DType.FLOAT32), (torch.bfloat16, DType.BFLOAT16)):
        tensor = torch.arange(12, device="cuda", dtype=dtype).reshape(3, 4)
        for how in ("dlpack", "cai"):
            obj = _DlpackOnly(tensor) if how == "dlpack" else _CaiOnly(tensor)
            if how == "cai" and dtype == torch.bfloat16:
                continue  # the CUDA array interface has no bfloat16 typestr
            stream = _cuda.Stream()
            view = from_object(obj, "x", stream=stream.handle)
            assert view.pointer == tensor.data_ptr()
            assert view.device.kind == "cuda" and view.shape == (3, 4) and view.dtype is kind
            raw = to_host(view.pointer, view.nbytes, np.dtype(np.uint8), (view.nbytes,))
            np.testing.assert_array_equal(raw, tensor.cpu().view(torch.uint8).numpy().reshape(-1))
            stream.close()


def test_cupy_arrays(gpu: int) -> None:
    cupy = pytest.importorskip("cupy")
    array = cupy.arange(10, dtype=cupy.float16)
    for obj in (_DlpackOnly(array), _CaiOnly(array)):
        view = from_object(obj, "x")
        assert view.pointer == array.data.ptr and view.dtype is DType.FLOAT16
        host = to_host(view.pointer, view.nbytes, np.dtype(np.float16), (10,))
        np.testing.assert_array_equal(host, cupy.asnumpy(array))


class _CaiOnly:
    """Hides ``__dlpack__`` so the CUDA array interface path is taken."""

    def __init__(self, inner: object) -> None:
        self.__cuda_array_interface__ = inner.__cuda_array_interface__  # type: ignore[attr-defined]
        self._inner = inner


class _DlpackOnly:
    """Hides ``__cuda_array_interface__`` so the DLPack path is taken."""

    def __init__(self, inner: object) -> None:
        self._inner = inner

    def __dlpack__(self, stream: int | None = None) -> object:
        return self._inner.__dlpack__(stream=stream)  # type: ignore[attr-defined]

    def __dlpack_device__(self) -> tuple[int, int]:
        return self._inner.__dlpack_device__()  # type: ignore[attr-defined,no-any-return]
