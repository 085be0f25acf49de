"""unirun.device_tensor: reading tensors through DLPack and the CUDA array interface as
(pointer, shape, dtype, device, stream, owner), and exporting them again.

Checked with host producers (numpy, torch CPU), whose DLPack capsules have the same layout as
CUDA ones (only the device field differs), and with small objects exposing a
``__cuda_array_interface__`` dict: these test the parsing only. Real CUDA tensors from torch
and cupy are read in ``plugins/tensorrt/tests/test_gpu_cuda.py`` and ``bench/gpu_check.py``."""

from __future__ import annotations

import gc
from typing import Any

import numpy as np
import pytest

from unirun import _dlpack
from unirun.device import Device
from unirun.device_tensor import DeviceTensor, from_object, where
from unirun.dtypes import DType
from unirun.errors import InputError

torch = pytest.importorskip("torch", reason="torch is not installed (requirements-dev.txt pins it)")


@pytest.mark.parametrize(
    "dtype", [np.float32, np.float16, np.float64, np.int64, np.int8, np.uint16, np.bool_]
)
def test_numpy_through_dlpack(dtype: type) -> None:
    array = np.arange(24).reshape(2, 3, 4).astype(dtype)
    tensor = from_object(array, "x")
    assert tensor.pointer == array.ctypes.data
    assert (tensor.shape, tensor.dtype) == ((2, 3, 4), DType.from_numpy(dtype))
    assert tensor.device == Device("cpu") and tensor.on_host and tensor.stream is None
    assert tensor.nbytes == array.nbytes


def test_torch_bfloat16_and_byte_offsets() -> None:
    base = torch.arange(12, dtype=torch.bfloat16).reshape(3, 4)
    row = base[1:]  # a view that starts 4 elements in
    tensor = from_object(row, "x")
    assert tensor.dtype is DType.BFLOAT16
    assert tensor.pointer == row.data_ptr() == base.data_ptr() + 8
    assert (tensor.shape, tensor.nbytes) == ((2, 4), 16)


def test_the_producer_stays_alive_while_the_tensor_is_used() -> None:
    tensor = from_object(torch.ones(1000), "x")
    gc.collect()
    np.testing.assert_array_equal(tensor.numpy(), np.ones(1000, np.float32))


def test_strided_views_are_refused_and_size_one_dims_are_not() -> None:
    with pytest.raises(InputError, match=r"'x' is not C-contiguous.*\.contiguous\(\)"):
        from_object(torch.ones(4, 3).t(), "x")
    with pytest.raises(InputError, match="'y' is not C-contiguous"):
        from_object(np.ones((4, 3), np.float32)[:, ::2], "y")
    column = torch.ones(4, 1).t()  # shape (1, 4), strides (1, 1): dense all the same
    assert from_object(column, "x").shape == (1, 4)


def test_types_and_objects_unirun_does_not_exchange() -> None:
    packed = torch.zeros(2, dtype=torch.uint8).view(torch.float4_e2m1fn_x2)
    with pytest.raises(InputError, match=r"'x' has DLPack type code 17, 4 bits, 2 lanes"):
        from_object(packed, "x")
    with pytest.raises(InputError, match="neither __dlpack__ nor __cuda_array_interface__"):
        from_object([1, 2, 3], "x")
    with pytest.raises(InputError, match=r"'g': .*cannot be exported through DLPack.*detach"):
        from_object(torch.ones(2, requires_grad=True), "g")


class _Rocm:
    """A DLPack producer on a device unirun has no kind for."""

    def __init__(self) -> None:
        self._array = np.ones(3, np.float32)

    def __dlpack_device__(self) -> tuple[int, int]:
        return (10, 0)

    def __dlpack__(self, stream: int | None = None) -> Any:
        header = DeviceTensor.from_numpy(self._array)
        return _dlpack.export(header.pointer, (3,), DType.FLOAT32, (10, 0), self._array)


def test_memory_on_a_device_without_a_unirun_kind_is_refused() -> None:
    with pytest.raises(InputError, match=r"'x' lives on ROCm \(DLPack device type 10\)"):
        from_object(_Rocm(), "x")


class _CudaArray:
    """Exposes only ``__cuda_array_interface__`` (version 3), as numba and cupy do. Its pointer
    is host memory: good for parsing, never dereferenced as device memory."""

    def __init__(self, strides: Any = None, stream: int | None = 7, **extra: Any) -> None:
        self.__cuda_array_interface__ = {
            "shape": (2, 3),
            "typestr": "<f2",
            "data": (0xDEAD0000, False),
            "strides": strides,
            "version": 3,
            "stream": stream,
            **extra,
        }


def test_cuda_array_interface() -> None:
    tensor = from_object(_CudaArray(), "x")
    assert tensor == DeviceTensor(0xDEAD0000, (2, 3), DType.FLOAT16, Device("cuda"), 7)
    assert not tensor.on_host and tensor.nbytes == 12
    assert from_object(_CudaArray(strides=(6, 2), stream=None), "x").stream is None
    with pytest.raises(InputError, match=r"'x' is not C-contiguous \(strides \(2, 4\) bytes\)"):
        from_object(_CudaArray(strides=(2, 4)), "x")
    with pytest.raises(InputError, match="malformed __cuda_array_interface__"):
        from_object(_CudaArray(typestr="nonsense"), "x")


def test_where_tells_host_from_device_memory() -> None:
    assert where(np.zeros(2)) is None
    assert where(torch.zeros(2)) is None
    assert where(DeviceTensor.from_numpy(np.zeros(2))) is None
    assert where(_CudaArray()) == Device("cuda")
    on_gpu1 = DeviceTensor(0, (0,), DType.FLOAT32, Device("cuda", 1))
    assert where(on_gpu1) == Device("cuda", 1)


# -- export --------------------------------------------------------------------------------------


def test_numpy_and_torch_read_a_host_tensor_without_copies() -> None:
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    tensor = DeviceTensor.from_numpy(array)
    assert np.shares_memory(np.from_dlpack(tensor), array)
    shared = torch.from_dlpack(tensor)
    assert shared.data_ptr() == array.ctypes.data and tuple(shared.shape) == (3, 4)
    shared[0, 0] = 42
    assert array[0, 0] == 42


@pytest.mark.parametrize(
    "dtype", [torch.bfloat16, torch.float16, torch.int64, torch.bool, torch.float8_e4m3fn]
)
def test_round_trip_through_torch_keeps_the_type(dtype: Any) -> None:
    source = torch.arange(6).reshape(2, 3).to(dtype)
    tensor = from_object(source, "x")
    back = torch.from_dlpack(tensor)
    assert back.dtype == dtype and back.data_ptr() == source.data_ptr()
    assert torch.equal(back.view(torch.uint8), source.view(torch.uint8))


def test_exported_memory_lives_as_long_as_its_consumer() -> None:
    before = len(_dlpack._exported)
    tensor = DeviceTensor.from_numpy(np.full(1000, 3.0, np.float32))
    consumer = torch.from_dlpack(tensor)
    del tensor
    gc.collect()
    assert float(consumer.sum()) == 3000.0  # the array is kept alive through the capsule
    assert len(_dlpack._exported) == before + 1
    del consumer
    gc.collect()
    assert len(_dlpack._exported) == before
    unused = DeviceTensor.from_numpy(np.ones(3)).__dlpack__()  # never consumed: freed with it
    assert len(_dlpack._exported) == before + 1
    del unused
    gc.collect()
    assert len(_dlpack._exported) == before


def test_export_refuses_what_it_cannot_do() -> None:
    tensor = DeviceTensor.from_numpy(np.ones(3, np.float32))
    with pytest.raises(BufferError, match="does not copy"):
        tensor.__dlpack__(copy=True)
    with pytest.raises(BufferError, match="cannot be exported elsewhere"):
        tensor.__dlpack__(dl_device=(2, 0))
    text = DeviceTensor(0, (1,), DType.STRING)
    with pytest.raises(BufferError, match="no type code unirun exchanges for string"):
        text.__dlpack__()
    assert not hasattr(tensor, "__cuda_array_interface__")  # host memory: DLPack only


def test_a_cuda_tensor_describes_itself_for_both_protocols() -> None:
    tensor = DeviceTensor(0xBEEF00, (2, 3), DType.FLOAT16, Device("cuda", 1))
    assert tensor.__dlpack_device__() == (2, 1)
    assert tensor.__cuda_array_interface__ == {
        "shape": (2, 3),
        "typestr": "<f2",
        "data": (0xBEEF00, False),
        "strides": None,
        "version": 3,
        "stream": None,
    }
    with pytest.raises(InputError, match=r"lives on cuda:1; .*torch.from_dlpack\(t\)\.cpu\(\)"):
        tensor.numpy()
    assert not hasattr(
        DeviceTensor(0, (1,), DType.BFLOAT16, Device("cuda")), "__cuda_array_interface__"
    )


def test_numpy_of_a_host_tensor_is_its_array_or_a_copy() -> None:
    array = np.arange(6, dtype=np.int32)
    tensor = DeviceTensor.from_numpy(array)
    assert tensor.numpy() is not None and np.shares_memory(tensor.numpy(), array)
    view = DeviceTensor(tensor.pointer + 4, (2, 2), DType.INT32, owner=array)
    copied = view.numpy()
    assert copied.tolist() == [[1, 2], [3, 4]] and not np.shares_memory(copied, array)
