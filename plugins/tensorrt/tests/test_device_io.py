"""Reading tensors through DLPack and ``__cuda_array_interface__`` as (pointer, shape, dtype,
device): checked here with host tensors from numpy and torch, whose DLPack capsules have the
same layout as CUDA ones (only the device differs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unirun import DType
from unirun.errors import InputError
from unirun_tensorrt._device_io import CPU, CUDA, DeviceTensor, from_numpy, from_object


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64, np.int8, np.uint8, np.bool_])
def test_numpy_through_dlpack(dtype: type) -> None:
    array = np.arange(24).reshape(2, 3, 4).astype(dtype)
    tensor = from_object(array, "x")
    assert tensor.ptr == array.ctypes.data
    assert tensor.shape == (2, 3, 4)
    assert tensor.dtype is DType.from_numpy(dtype)
    assert tensor.device_type == CPU and not tensor.on_cuda
    assert tensor.nbytes == array.nbytes


def test_torch_bfloat16_and_offsets() -> None:
    base = torch.arange(12, dtype=torch.bfloat16).reshape(3, 4)
    row = base[1:]  # a view that starts 4 elements in
    tensor = from_object(row, "x")
    assert tensor.dtype is DType.BFLOAT16
    assert tensor.ptr == row.data_ptr() == base.data_ptr() + 8
    assert tensor.shape == (2, 4)
    assert tensor.nbytes == 16


def test_the_producer_stays_alive_while_the_tensor_is_used() -> None:
    tensor = from_object(torch.ones(1000), "x")
    import gc

    gc.collect()
    values = np.ctypeslib.as_array((np.ctypeslib.ctypes.c_float * 1000).from_address(tensor.ptr))
    assert values.sum() == 1000


def test_non_contiguous_tensors_are_refused() -> None:
    with pytest.raises(InputError, match="'x' is not C-contiguous"):
        from_object(torch.ones(4, 3).t(), "x")
    with pytest.raises(InputError, match="'y' is not C-contiguous"):
        from_object(np.ones((4, 3), np.float32)[:, ::2], "y")


def test_types_unirun_does_not_exchange() -> None:
    with pytest.raises(InputError, match="'x' has DLPack type code 5"):
        from_object(torch.ones(2, dtype=torch.complex64), "x")
    with pytest.raises(InputError, match="neither __cuda_array_interface__ nor __dlpack__"):
        from_object([1, 2, 3], "x")


class CudaArray:
    """An object with only ``__cuda_array_interface__`` (version 3), as numba/cupy expose it."""

    def __init__(self, strides: tuple[int, ...] | None = None, stream: int | None = 7) -> None:
        self.__cuda_array_interface__ = {
            "shape": (2, 3),
            "typestr": "<f2",
            "data": (0xDEAD0000, False),
            "strides": strides,
            "version": 3,
            "stream": stream,
        }


def test_cuda_array_interface() -> None:
    tensor = from_object(CudaArray(), "x")
    assert tensor == DeviceTensor(0xDEAD0000, (2, 3), DType.FLOAT16, CUDA, -1, 7)
    assert tensor.on_cuda and tensor.nbytes == 12
    assert from_object(CudaArray(strides=(6, 2), stream=None), "x").stream is None
    with pytest.raises(InputError, match="not C-contiguous"):
        from_object(CudaArray(strides=(2, 4)), "x")


def test_from_numpy() -> None:
    array = np.zeros((2, 2), np.int32)
    assert from_numpy(array) == DeviceTensor(array.ctypes.data, (2, 2), DType.INT32)
