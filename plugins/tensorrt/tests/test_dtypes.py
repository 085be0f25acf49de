"""The TensorRT dtype table: names, and buffer sizes for the types numpy and ``trt.nptype``
lack (bf16, fp8, int4, fp4)."""

from __future__ import annotations

import pytest

from unirun import DType
from unirun_tensorrt import TensorRTBackend
from unirun_tensorrt._dtypes import FROM_TRT, IO_DTYPES, TO_TRT, from_trt, nbytes


@pytest.mark.parametrize(
    ("dtype", "shape", "size"),
    [
        (DType.FLOAT32, (2, 3), 24),
        (DType.FLOAT16, (2, 3), 12),
        (DType.BFLOAT16, (2, 3), 12),
        (DType.FLOAT8_E4M3FN, (2, 3), 6),
        (DType.INT4, (2, 3), 3),  # two per byte
        (DType.INT4, (3, 3), 5),  # an odd count rounds up
        (DType.FLOAT4_E2M1, (1, 7), 4),
        (DType.INT64, (5,), 40),
        (DType.BOOL, (4,), 4),
        (DType.FLOAT32, (0, 3), 0),
        (DType.FLOAT32, (), 4),
    ],
)
def test_buffer_sizes(dtype: DType, shape: tuple[int, ...], size: int) -> None:
    assert nbytes(dtype, shape) == size


def test_names_round_trip_and_accept_enum_members() -> None:
    assert {FROM_TRT[name] for name in TO_TRT.values()} == set(TO_TRT)
    assert from_trt("HALF") is DType.FLOAT16
    assert from_trt("DataType.BF16") is DType.BFLOAT16

    class Member:  # what str() of a pybind11 enum member looks like has varied; .name has not
        name = "FP8"

    assert from_trt(Member()) is DType.FLOAT8_E4M3FN
    with pytest.raises(ValueError, match="DOUBLE"):
        from_trt("DOUBLE")


def test_declared_io_types_are_exchangeable_with_numpy() -> None:
    assert TensorRTBackend.capabilities.dtypes == IO_DTYPES
    assert set(IO_DTYPES) <= set(TO_TRT)
    for dtype in IO_DTYPES:
        assert dtype.numpy.itemsize * 8 == dtype.bits
