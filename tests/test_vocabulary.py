"""DType, Device and CompileOptions: the vocabulary every backend shares."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import pytest

from unirun import CompileOptions, Device, DeviceError, DType, ShapeRange


@pytest.mark.parametrize("dtype", list(DType))
def test_every_dtype_round_trips_through_onnx_and_numpy(dtype: DType) -> None:
    assert DType.from_onnx(dtype.onnx) is dtype
    assert DType.parse(dtype.value) is dtype
    if dtype is DType.STRING:
        assert dtype.numpy == np.dtype(object)
    else:
        assert DType.from_numpy(dtype.numpy) is dtype
        # our table agrees with onnx's own mapping
        assert onnx.helper.tensor_dtype_to_np_dtype(dtype.onnx) == dtype.numpy


def test_onnx_codes_cover_every_onnx_type() -> None:
    codes = {v for k, v in onnx.TensorProto.DataType.items() if k != "UNDEFINED"}
    assert codes == {d.onnx for d in DType}


def test_narrow_floats_come_from_ml_dtypes() -> None:
    assert DType.BFLOAT16.numpy == np.dtype(ml_dtypes.bfloat16)
    assert DType.FLOAT8_E4M3FN.numpy == np.dtype(ml_dtypes.float8_e4m3fn)
    assert DType.INT4.bits == 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("float", DType.FLOAT32),
        ("tensor(float16)", DType.FLOAT16),
        ("fp16", DType.FLOAT16),
        ("bf16", DType.BFLOAT16),
        ("tensor(int64)", DType.INT64),
        ("double", DType.FLOAT64),
    ],
)
def test_dtype_parse_accepts_onnx_and_short_names(text: str, expected: DType) -> None:
    assert DType.parse(text) is expected


def test_unknown_dtype_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown dtype 'floatish'.*float32"):
        DType.parse("floatish")


@pytest.mark.parametrize(
    ("text", "kind", "index", "printed"),
    [
        ("cpu", "cpu", None, "cpu"),
        ("cuda", "cuda", None, "cuda"),
        ("cuda:1", "cuda", 1, "cuda:1"),
        ("GPU.0", "gpu", 0, "gpu:0"),
        ("gpu", "gpu", None, "gpu"),
        ("npu", "npu", None, "npu"),
        ("ane", "ane", None, "ane"),
        ("auto", "auto", None, "auto"),
        (" Cuda : 2 ", "cuda", 2, "cuda:2"),
    ],
)
def test_device_parse_and_print(text: str, kind: str, index: int | None, printed: str) -> None:
    device = Device.parse(text)
    assert (device.kind, device.index, str(device)) == (kind, index, printed)
    assert Device.parse(str(device)) == device


@pytest.mark.parametrize("bad", ["tpu", "cuda:-1", "cuda:x", "", "cpu:1", 3])
def test_bad_devices_raise_device_error(bad: object) -> None:
    with pytest.raises(DeviceError):
        Device.parse(bad)  # type: ignore[arg-type]


def test_device_matching() -> None:
    assert Device.parse("cuda").matches(Device("cuda", 0))
    assert Device.parse("cuda").matches(Device("cuda", 3))
    assert not Device.parse("cuda:1").matches(Device("cuda", 0))
    assert Device.parse("auto").matches(Device("cpu"))
    assert not Device.parse("gpu").matches(Device("cpu"))


def test_shapes_accept_fixed_and_triples() -> None:
    options = CompileOptions(shapes={"x": (1, 3, 8, 8), "y": ((1, 4), (8, 4), (32, 4))})  # type: ignore[dict-item]
    assert options.shapes["x"].is_fixed and options.shapes["x"].min == (1, 3, 8, 8)
    assert options.shapes["y"] == ShapeRange(min=(1, 4), opt=(8, 4), max=(32, 4))
    assert options.shapes["y"].contains((16, 4)) and not options.shapes["y"].contains((33, 4))


@pytest.mark.parametrize(
    "shapes",
    [
        {"x": ((4, 3), (2, 3), (8, 3))},
        {"x": ((1, 3), (2, 3, 1), (8, 3))},
        {"x": "1x3"},
        {"x": ((1,), (2,))},
        ["x"],
    ],
)
def test_bad_shapes_are_rejected(shapes: object) -> None:
    with pytest.raises(ValueError, match=r"shape|rank|min <= opt <= max"):
        CompileOptions(shapes=shapes)  # type: ignore[arg-type]


def test_options_forbid_unknown_fields_and_are_frozen() -> None:
    with pytest.raises(ValueError, match="extra"):
        CompileOptions(precison="fp16")  # type: ignore[call-arg]
    options = CompileOptions()
    with pytest.raises(ValueError, match="frozen"):
        options.precision = "fp16"  # type: ignore[misc]


def test_numpy_native_marks_the_types_ml_dtypes_supplies() -> None:
    assert DType.FLOAT32.numpy_native and DType.BOOL.numpy_native
    assert not DType.BFLOAT16.numpy_native and not DType.INT4.numpy_native
    assert not DType.STRING.numpy_native
