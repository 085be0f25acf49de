"""Property-based tests of the input normaliser and the feed checks: whatever a caller passes,
the result is an array the engine may take, or an ``InputError``, never another exception."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from onnx import TensorProto, helper

import unirun
from unirun import DType, InputError, TensorSpec
from unirun.tensor import as_array

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_DTYPES = st.sampled_from(
    [
        np.dtype(t)
        for t in (
            np.float32,
            np.float64,
            np.float16,
            np.int8,
            np.int32,
            np.int64,
            np.uint8,
            np.uint64,
            np.bool_,
            np.complex64,
            ">f4",
            "<U3",
            "S2",
            ml_dtypes.bfloat16,
        )
    ]
)


@st.composite
def numpy_arrays(draw: st.DrawFn) -> np.ndarray[Any, Any]:
    """Arrays of many dtypes and shapes, some as strided, transposed, broadcast or read-only
    views."""
    dtype = draw(_DTYPES)
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4))
    if dtype == np.dtype(ml_dtypes.bfloat16):
        array = np.asarray(draw(hnp.arrays(np.float32, shape)), dtype=dtype)
    else:
        array = draw(hnp.arrays(dtype, shape))
    view = draw(st.sampled_from(["plain", "step", "transpose", "broadcast", "readonly"]))
    if view == "step" and array.ndim:
        array = array[..., ::2]
    elif view == "transpose":
        array = array.T
    elif view == "broadcast" and array.ndim:
        array = np.broadcast_to(array[..., :1], array.shape)
    elif view == "readonly":
        array = array.copy()
        array.flags.writeable = False
    return array


class _DLPack:
    """A DLPack producer, well behaved or not."""

    def __init__(self, array: np.ndarray[Any, Any], how: str) -> None:
        self.array, self.how = array, how

    def __dlpack__(self, **kwargs: Any) -> Any:
        if self.how == "raises":
            raise RuntimeError("producer failure")
        if self.how == "not_a_capsule":
            return object()
        return self.array.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> Any:
        return {"cuda": (2, 0), "garbage": "cpu", "raises": None}.get(self.how, (1, 0))


class _ArrayLike:
    def __init__(self, value: Any, how: str) -> None:
        self.value, self.how = value, how

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        if self.how == "raises":
            raise ValueError("no array for you")
        if self.how == "returns_list":
            return [1, 2]
        return np.asarray(self.value)


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.complex_numbers(),
    st.text(max_size=4),
    st.binary(max_size=4),
)
_NESTED = st.recursive(
    _SCALARS, lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner), max_leaves=12
)


def _feeds(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["array", "nested", "dlpack", "array_like", "object"]))
    if kind == "array":
        return draw(numpy_arrays())
    if kind == "nested":
        return draw(_NESTED)
    if kind == "dlpack":
        array = draw(numpy_arrays().filter(lambda a: a.dtype.kind in "fiub" and a.dtype.isnative))
        how = draw(st.sampled_from(["ok", "raises", "not_a_capsule", "cuda", "garbage"]))
        return _DLPack(array, how)
    if kind == "array_like":
        how = draw(st.sampled_from(["ok", "raises", "returns_list"]))
        return _ArrayLike(draw(_NESTED), how)
    return draw(st.sampled_from([object(), {"a": 1}, {1, 2}, range(3), iter([1]), Ellipsis]))


feeds = st.composite(_feeds)


def _outcome(function: Any, *args: Any) -> Any:
    """The result, or the InputError raised (any other exception fails the test)."""
    try:
        return function(*args)
    except InputError as exc:
        return exc


@PROPERTY
@given(value=feeds(), dtype=st.sampled_from(list(DType)))
def test_as_array_gives_an_array_or_an_input_error(value: Any, dtype: DType) -> None:
    result = _outcome(as_array, value, TensorSpec("x", dtype, None))
    if isinstance(result, InputError):
        assert result.name == "x"
    else:
        assert isinstance(result, np.ndarray)


def _model() -> Any:
    """Inputs of every kind of declared shape: fixed, symbolic, bounded by ``shapes``, a list of
    shapes and a scalar; each passed through by Identity."""
    declared = {
        "fixed": (TensorProto.FLOAT, [2, 3]),
        "symbolic": (TensorProto.INT64, ["n", 2]),
        "bounded": (TensorProto.FLOAT, ["b", 2]),
        "choices": (TensorProto.UINT8, ["h", "w"]),
        "scalar": (TensorProto.BOOL, []),
    }
    graph = helper.make_graph(
        [helper.make_node("Identity", [name], [f"{name}_out"]) for name in declared],
        "inputs",
        [helper.make_tensor_value_info(n, t, shape) for n, (t, shape) in declared.items()],
        [helper.make_tensor_value_info(f"{n}_out", t, shape) for n, (t, shape) in declared.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.fixture(scope="module")
def model() -> Any:
    shapes = {"bounded": ((1, 2), (2, 2), (4, 2)), "choices": {"choices": [(1, 2), (3, 4)]}}
    with unirun.load(_model(), backend="reference", shapes=shapes, cache=False) as m:
        yield m


def _valid(m: unirun.Model, name: str, array: np.ndarray[Any, Any]) -> None:
    (spec,) = [s for s in m.inputs if s.name == name]
    assert array.dtype == spec.dtype.numpy and array.flags.c_contiguous
    bounds = m.options.shapes.get(name)
    if bounds is not None:
        assert bounds.contains(array.shape), (name, array.shape)
    assert spec.shape is not None and len(array.shape) == len(spec.shape)
    for got, want in zip(array.shape, spec.shape, strict=True):
        assert not isinstance(want, int) or got == want


_NAMES = ("fixed", "symbolic", "bounded", "choices", "scalar")
_NEAR = {  # dtype and a shape per symbolic dim, so that about half the draws are accepted
    "fixed": (np.float32, lambda n: (2, 3)),
    "symbolic": (np.int64, lambda n: (n, 2)),
    "bounded": (np.float32, lambda n: (n, 2)),
    "choices": (np.uint8, lambda n: (1, 2) if n % 2 else (3, 4)),
    "scalar": (np.bool_, lambda n: ()),
}


@st.composite
def near_valid(draw: st.DrawFn, name: str) -> Any:
    """A feed for ``name`` of its declared dtype and of a shape it may take, in any form a
    caller uses: a C-contiguous array, a strided view of one, a Python list, a DLPack object."""
    dtype, shape_for = _NEAR[name]
    array = draw(hnp.arrays(dtype, shape_for(draw(st.integers(1, 4)))))
    form = draw(st.sampled_from(["array", "fortran", "strided", "list", "dlpack"]))
    if form == "fortran" and array.ndim:
        return np.asfortranarray(array)
    if form == "strided":
        return np.repeat(array, 2, axis=-1)[..., ::2] if array.ndim else array
    if form == "list":
        return array.tolist()
    if form == "dlpack":
        return _DLPack(array, "ok")
    return array


@PROPERTY
@given(data=st.data())
def test_feed_checks_give_valid_feeds_or_an_input_error(model: unirun.Model, data: Any) -> None:
    form = data.draw(st.sampled_from(["dict", "dict", "list", "single", "partial", "extra"]))
    hostile = data.draw(st.none() | st.sampled_from(_NAMES), label="hostile input")
    values = {
        name: data.draw(feeds() if name == hostile else near_valid(name), label=name)
        for name in _NAMES
    }
    inputs: Any
    if form == "dict":
        inputs = values
    elif form == "list":
        inputs = list(values.values())
    elif form == "single":
        inputs = values["fixed"]
    elif form == "partial":
        inputs = {k: v for k, v in values.items() if k != "scalar"}
    else:
        inputs = {**values, data.draw(st.text(max_size=3)): 1}
    checked = _outcome(model._feeds.check, inputs)
    event(type(checked).__name__)  # how many were accepted: --hypothesis-show-statistics
    # The same through infer(), whose hot path passes a dict of arrays in shapes it already
    # accepted straight to the engine: it must refuse exactly what the full checks refuse.
    ran = _outcome(model.infer, inputs)
    assert isinstance(ran, InputError) == isinstance(checked, InputError), (ran, checked)
    if isinstance(checked, InputError):
        assert isinstance(ran, InputError) and ran.name == checked.name
        return
    assert list(checked) == list(_NAMES)
    for name, array in checked.items():
        _valid(model, name, array)


@PROPERTY
@given(
    fixed=numpy_arrays(),
    bounded=hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=3, max_side=6)),
    choices=hnp.arrays(np.uint8, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5)),
)
def test_shape_checks_follow_the_declared_bounds(
    model: unirun.Model, fixed: Any, bounded: Any, choices: Any
) -> None:
    """Arrays of the right dtype pass exactly when their shape is within the bounds/choices."""
    feeds = {
        "fixed": np.zeros((2, 3), np.float32),
        "symbolic": np.zeros((5, 2), np.int64),
        "bounded": bounded,
        "choices": choices,
        "scalar": np.array(True),
    }
    in_bounds = bounded.ndim == 2 and 1 <= bounded.shape[0] <= 4 and bounded.shape[1] == 2
    in_choices = choices.shape in ((1, 2), (3, 4))
    result = _outcome(model._feeds.check, feeds)
    if isinstance(result, InputError):
        assert not (in_bounds and in_choices), str(result)
        assert result.name in ("bounded", "choices")
    else:
        assert in_bounds and in_choices
    ok = {"bounded": np.zeros((2, 2), np.float32), "choices": np.zeros((1, 2), np.uint8)}
    result = _outcome(model._feeds.check, {**feeds, **ok, "fixed": fixed})
    if isinstance(result, InputError):
        assert result.name == "fixed"
        assert fixed.shape != (2, 3) or fixed.dtype != np.float32
    else:
        assert fixed.shape == (2, 3) and fixed.dtype == np.float32
        _valid(model, "fixed", result["fixed"])
