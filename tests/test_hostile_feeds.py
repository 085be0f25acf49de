"""Feeds and options that used to escape as untyped exceptions: each is now a typed
``unirun`` error that says what to do, checked before anything large is allocated."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import unirun
from unirun import InputError, OptionsError
from unirun import model as model_module
from unirun.testing import conv_net, mlp, passthrough

ENGINES = [
    b.name
    for b in unirun.backends()
    if b.available and b.name in ("reference", "onnxruntime", "openvino")
]


@pytest.fixture(scope="module")
def cnn() -> Any:
    with unirun.load(conv_net(size=8), backend="reference", cache=False) as m:
        yield m


def test_a_huge_broadcast_view_is_refused_before_copying(cnn: unirun.Model) -> None:
    """A ``broadcast_to`` view of batch 10**9 (11 TiB once contiguous) used to raise MemoryError
    (or get the process killed) while unirun made it contiguous."""
    view = np.broadcast_to(np.zeros((1, 3, 8, 8), np.float32), (10**9, 3, 8, 8))
    with pytest.raises(InputError, match=r"'image'.*768.0 GB.*contiguous") as info:
        cnn(view)
    assert info.value.name == "image"


def test_the_copy_limit_is_a_documented_setting(
    cnn: unirun.Model, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = np.zeros((2, 3, 8, 8), np.float32)
    strided = np.asfortranarray(image)  # a copy is needed: 1536 bytes
    monkeypatch.setattr(model_module, "MAX_COPY_BYTES", 1000)
    with pytest.raises(InputError, match="MAX_COPY_BYTES"):
        cnn(strided)
    monkeypatch.setattr(model_module, "MAX_COPY_BYTES", 2000)
    np.testing.assert_array_equal(cnn(strided)["logits"], cnn(image)["logits"])
    cnn(np.broadcast_to(image[:1], (100, 3, 8, 8))[:2])  # views that need no copy are free


class _Hostile:
    """DLPack producers that misbehave in the ways a buggy or hostile framework might."""

    def __init__(self, how: str) -> None:
        self.how = how

    def __dlpack__(self, **kwargs: Any) -> Any:
        if self.how == "raises":
            raise ValueError("the producer blew up")
        if self.how == "returns_int":
            return 42
        return np.zeros((1, 3, 8, 8), np.float32).__dlpack__(**kwargs)

    def __dlpack_device__(self) -> Any:
        if self.how == "device_raises":
            raise KeyError("no device")
        if self.how == "device_garbage":
            return ("cpu", None)
        return (1, 0)


@pytest.mark.parametrize("how", ["raises", "returns_int", "device_raises", "device_garbage"])
def test_a_broken_dlpack_producer_is_an_input_error(cnn: unirun.Model, how: str) -> None:
    if how.startswith("device"):  # numpy does not need the device: the tensor is usable
        assert cnn(_Hostile(how))["logits"].shape == (1, 10)
        return
    with pytest.raises(InputError, match="DLPack") as info:
        cnn(_Hostile(how))
    assert info.value.name == "image"


@pytest.mark.parametrize("options", [5, "threads=2", [("threads", 2)], 1.5])
def test_options_that_are_not_a_mapping(options: Any) -> None:
    """``options=5`` used to raise TypeError from deep inside."""
    for backend in ENGINES:
        with pytest.raises(OptionsError, match="options"):
            unirun.compile(mlp(), backend=backend, options=options, cache=False)


@pytest.mark.parametrize("backend", ENGINES)
def test_absurd_thread_counts_are_refused_at_compile(backend: str) -> None:
    """``threads=10**20`` compiled, then every load failed with a pybind11 overflow dump."""
    with pytest.raises(OptionsError, match="threads"):
        unirun.compile(mlp(), backend=backend, threads=10**20, cache=False)
    with pytest.raises(OptionsError, match="threads"):
        unirun.load(mlp(), backend=backend, threads=0, cache=False)


@pytest.mark.parametrize(
    "shapes",
    [
        {"x": (10**30, 16)},
        {"x": ((1, 16), (2, 16), (10**30, 16))},
        {"x": {"choices": [(1, 16), (10**30, 16)]}},
        {"x": {"choices": [(1, 16), (-3, 16)]}},
    ],
    ids=["fixed", "max", "choice", "negative-choice"],
)
def test_shape_sizes_past_int64_are_options_errors(shapes: Any) -> None:
    """Dims of 10**30 used to reach the engine and come back as CompileError "Value out of
    range"; a list of choices was not checked at all."""
    for backend in ENGINES:
        with pytest.raises(OptionsError, match="shapes"):
            unirun.compile(mlp(), backend=backend, shapes=shapes, cache=False)


def test_string_input_hint_names_a_dtype_that_exists() -> None:
    """The hint said ``.astype(numpy.object)``, which numpy removed."""
    from unirun import DType

    with (
        unirun.load(passthrough(DType.STRING), backend="reference", cache=False) as m,
        pytest.raises(InputError, match=r"\.astype\(object\)") as info,
    ):
        m(np.zeros((2, 3), np.float32))
    assert "numpy.object" not in str(info.value)


def test_narrow_float_hint_names_ml_dtypes() -> None:
    from unirun import DType

    with (
        unirun.load(passthrough(DType.BFLOAT16), backend="reference", cache=False) as m,
        pytest.raises(InputError, match=r"\.astype\(ml_dtypes\.bfloat16\)"),
    ):
        m(np.zeros((2, 3), np.float32))
