"""The Model facade: feed forms, validation errors, lifecycle and concurrency.

These run on the core's ``reference`` backend (onnx.reference), so they need no engine SDK.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import unirun
from unirun import InputError, ModelClosedError


def _image(batch: int = 1, size: int = 8, seed: int = 0) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).standard_normal((batch, 3, size, size)).astype(np.float32)


@pytest.fixture
def cnn(cnn_path: Path) -> Any:
    with unirun.load(cnn_path, backend="reference") as model:
        yield model


def test_specs_name_dtype_and_symbolic_dims(cnn: unirun.Model) -> None:
    (image,) = cnn.inputs
    assert (image.name, image.dtype, image.shape) == ("image", unirun.DType.FLOAT32, ("N", 3, 8, 8))
    assert [o.name for o in cnn.outputs] == ["logits"]
    assert cnn.backend == "reference" and cnn.device == unirun.Device("cpu")


def test_three_input_forms_give_the_same_outputs(cnn: unirun.Model) -> None:
    x = _image(2)
    by_name = cnn({"image": x})["logits"]
    np.testing.assert_array_equal(cnn([x])["logits"], by_name)
    np.testing.assert_array_equal(cnn(x)["logits"], by_name)
    np.testing.assert_array_equal(cnn.infer((x,))["logits"], by_name)
    assert by_name.shape == (2, 10)


class _DLPackOnly:
    """Exposes nothing but the DLPack protocol, like a torch or jax CPU tensor."""

    def __init__(self, array: np.ndarray[Any, Any]) -> None:
        self._array = array

    def __dlpack__(self, **kwargs: Any) -> Any:
        return self._array.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self._array.__dlpack_device__()


class _ArrayOnly:
    def __init__(self, array: np.ndarray[Any, Any]) -> None:
        self._array = array

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray[Any, Any]:
        return self._array


class _OnDevice(_DLPackOnly):
    def __dlpack_device__(self) -> tuple[int, int]:
        return (2, 0)  # kDLCUDA


def test_dlpack_and_array_protocol_inputs(cnn: unirun.Model) -> None:
    x = _image()
    expected = cnn(x)["logits"]
    np.testing.assert_array_equal(cnn(_DLPackOnly(x))["logits"], expected)
    np.testing.assert_array_equal(cnn({"image": _ArrayOnly(x)})["logits"], expected)


def test_device_tensor_is_refused_with_the_fix(cnn: unirun.Model) -> None:
    with pytest.raises(InputError, match=r"lives on a device.*\.cpu\(\)"):
        cnn(_OnDevice(_image()))


def test_non_contiguous_input_is_accepted(cnn: unirun.Model) -> None:
    x = np.asfortranarray(_image(2))
    np.testing.assert_allclose(cnn(x)["logits"], cnn(np.ascontiguousarray(x))["logits"])


def test_python_lists_take_the_input_dtype(multi_path: Path) -> None:
    with unirun.load(multi_path, backend="reference") as model:
        out = model({"x": [[1, 2, 3], [4, 5, 6]], "mask": [[True, False, True]] * 2})
    assert out["total"] == pytest.approx(1 + 3 + 4 + 6)
    assert out["masked"].dtype == np.float32


@pytest.mark.parametrize(
    ("feeds", "match"),
    [
        ({}, r"missing input 'image' \(float32\[N, 3, 8, 8\]\)"),
        ({"image": _image(), "extra": _image()}, r"unknown input name\(s\) 'extra'"),
        ({"imgae": _image()}, r"missing input 'image'.*unknown names given: 'imgae'"),
        ({"image": _image()[0]}, r"'image' expects float32\[N, 3, 8, 8\], got rank 3"),
        ({"image": _image(size=9)}, r"expects float32\[N, 3, 8, 8\], got shape \(1, 3, 9, 9\)"),
        ({"image": _image().astype(np.int64)}, r"got dtype int64; convert it with \.astype"),
        ({"image": _image().astype(np.float64)}, r"got dtype float64"),
        ({"image": "not an array"}, r"cannot convert 'not an array' to float32"),
        ({"image": object()}, r"expected an array"),
    ],
)
def test_bad_feeds_raise_input_error_naming_the_input(
    cnn: unirun.Model, feeds: dict[str, Any], match: str
) -> None:
    with pytest.raises(InputError, match=match) as info:
        cnn(feeds)
    assert isinstance(info.value, ValueError)  # InputError is also a ValueError


def test_positional_count_mismatch(multi_path: Path) -> None:
    with unirun.load(multi_path, backend="reference") as model:
        with pytest.raises(InputError, match="got 1 positional inputs, but the model takes 2"):
            model([np.zeros((2, 3), np.float32)])
        with pytest.raises(InputError, match="takes 2 inputs"):
            model(np.zeros((2, 3), np.float32))


def test_integer_input_model(embedding_path: Path) -> None:
    with unirun.load(embedding_path, backend="reference") as model:
        ids = np.array([[1, 2, 0], [3, 0, 0]], np.int64)
        out = model({"ids": ids, "scale": np.array([2.0], np.float32)})
        assert out["count"].tolist() == [2, 1]
        with pytest.raises(InputError, match="'ids' expects int64"):
            model({"ids": ids.astype(np.float32), "scale": np.array([2.0], np.float32)})


def test_bounds_from_shapes_are_enforced(cnn_path: Path) -> None:
    shapes = {"image": ((1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8))}
    with unirun.load(cnn_path, backend="reference", shapes=shapes) as model:
        assert model(_image(4))["logits"].shape == (4, 10)
        with pytest.raises(InputError, match=r"float32\[1\.\.4, 3, 8, 8\].*compiled for"):
            model(_image(5))


def test_use_after_close_raises_and_close_is_idempotent(cnn_path: Path) -> None:
    model = unirun.load(cnn_path, backend="reference")
    model.close()
    model.close()
    assert model.closed and "closed" in repr(model)
    with pytest.raises(ModelClosedError, match="closed"):
        model(_image())
    with pytest.raises(ModelClosedError):
        model.infer_async(_image())


def test_context_manager_closes(cnn_path: Path) -> None:
    with unirun.load(cnn_path, backend="reference") as model:
        pass
    assert model.closed


def test_infer_async_and_map_keep_order(cnn: unirun.Model) -> None:
    images = [_image(seed=i) for i in range(6)]
    expected = [cnn(x)["logits"] for x in images]
    future = cnn.infer_async(images[0])
    np.testing.assert_array_equal(future.result()["logits"], expected[0])
    results = list(cnn.map(images, in_flight=3))
    for got, want in zip(results, expected, strict=True):
        np.testing.assert_array_equal(got["logits"], want)


def test_serial_backend_is_safe_from_many_threads(cnn: unirun.Model) -> None:
    images = [_image(seed=i) for i in range(4)]
    expected = [cnn(x)["logits"] for x in images]
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for _ in range(3):
                np.testing.assert_array_equal(cnn(images[i % 4])["logits"], expected[i % 4])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_a_list_of_shape_choices_is_enforced(cnn_path: Path) -> None:
    shapes = {"image": {"choices": [(1, 3, 8, 8), (4, 3, 8, 8)]}}
    with unirun.load(cnn_path, backend="reference", shapes=shapes) as model:
        bounds = model.options.shapes["image"]
        assert (bounds.min, bounds.opt, bounds.max) == ((1, 3, 8, 8), (1, 3, 8, 8), (4, 3, 8, 8))
        assert model(_image(4))["logits"].shape == (4, 10)
        with pytest.raises(InputError, match=r"of shape one of \(1, 3, 8, 8\), \(4, 3, 8, 8\)"):
            model(_image(2))  # within the bounds, but not one of the choices
    saved = model.artifact.manifest.model_dump(mode="json")["options"]["shapes"]["image"]
    assert saved["choices"] == [[1, 3, 8, 8], [4, 3, 8, 8]]
