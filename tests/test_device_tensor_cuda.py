"""unirun.device_tensor with real CUDA tensors from torch and cupy: read without a copy, in
stream order, and exported back through DLPack and the CUDA array interface. Needs a CUDA GPU
with a CUDA build of torch (cupy optional); skips with the reason elsewhere.
``python -m bench.gpu_check`` runs it on a GPU machine."""

from __future__ import annotations

import gc
from typing import Any

import numpy as np
import pytest

from unirun import _dlpack
from unirun.device import Device
from unirun.device_tensor import LEGACY_STREAM, DeviceTensor, from_object, where
from unirun.dtypes import DType
from unirun.errors import InputError

torch = pytest.importorskip("torch", reason="torch is not installed (requirements-dev.txt pins it)")
pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason=f"needs a CUDA GPU and a CUDA build of torch (torch {torch.__version__} sees none)",
)


def _cupy() -> Any:
    return pytest.importorskip("cupy", reason="cupy is not installed")


@pytest.mark.parametrize(
    ("dtype", "kind"),
    [(torch.float32, DType.FLOAT32), (torch.bfloat16, DType.BFLOAT16), (torch.int64, DType.INT64)],
)
def test_torch_cuda_tensors_are_read_in_place(dtype: Any, kind: DType) -> None:
    source = torch.arange(12, device="cuda").reshape(3, 4).to(dtype)
    assert where(source) == Device("cuda", 0)
    tensor = from_object(source, "x", stream=LEGACY_STREAM)
    assert tensor.pointer == source.data_ptr()
    assert (tensor.shape, tensor.dtype, tensor.device) == ((3, 4), kind, Device("cuda", 0))
    assert tensor.stream == LEGACY_STREAM


def test_a_producer_on_a_side_stream_is_ordered_before_the_legacy_stream() -> None:
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        big = torch.ones(4096, 4096, device="cuda")
        result = (big @ big).sum(dim=1)  # queued on the side stream, maybe still running
    tensor = from_object(result, "x", stream=LEGACY_STREAM)
    # torch made the legacy default stream wait for the side stream; read on it.
    read = torch.from_dlpack(tensor)
    with torch.cuda.stream(torch.cuda.default_stream()):
        host = read.cpu()
    assert torch.all(host == 4096.0 * 4096.0)


def test_export_round_trips_through_torch_without_copies() -> None:
    source = torch.arange(6, device="cuda", dtype=torch.float16).reshape(2, 3)
    tensor = from_object(source, "x", stream=LEGACY_STREAM)
    back = torch.from_dlpack(tensor)
    assert back.data_ptr() == source.data_ptr() and back.device.type == "cuda"
    assert torch.equal(back, source)
    through_cai = torch.as_tensor(tensor, device="cuda")
    assert through_cai.data_ptr() == source.data_ptr()


def test_exported_cuda_memory_lives_as_long_as_its_consumer() -> None:
    before = len(_dlpack._exported)
    source = torch.full((1024,), 7.0, device="cuda")
    tensor = DeviceTensor(
        source.data_ptr(), (1024,), DType.FLOAT32, Device("cuda", 0), owner=source
    )
    consumer = torch.from_dlpack(tensor)
    del source, tensor
    gc.collect()
    assert float(consumer.sum()) == 7.0 * 1024
    del consumer
    gc.collect()
    assert len(_dlpack._exported) == before


def test_cupy_arrays_both_ways() -> None:
    cupy = _cupy()
    array = cupy.arange(10, dtype=cupy.float32)
    tensor = from_object(array, "x", stream=LEGACY_STREAM)
    assert tensor.pointer == array.data.ptr and tensor.device.kind == "cuda"
    back = cupy.from_dlpack(tensor)
    assert back.data.ptr == array.data.ptr
    np.testing.assert_array_equal(cupy.asnumpy(back), np.arange(10, dtype=np.float32))
    via_cai = cupy.asarray(tensor)  # the CUDA array interface
    assert via_cai.data.ptr == array.data.ptr


def test_strided_cuda_views_are_refused() -> None:
    with pytest.raises(InputError, match="not C-contiguous"):
        from_object(torch.ones(4, 3, device="cuda").t(), "x", stream=LEGACY_STREAM)
