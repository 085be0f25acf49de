"""The hot path of ``Model.infer``: a dict of C-contiguous arrays of the inputs' dtypes, in
shapes already accepted, reaches the engine as it is (no new dict, no copy), and everything the
full checks refuse is still refused after the hot path has warmed up."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pytest

import unirun
from unirun._reference import ReferenceBackend
from unirun.errors import InputError
from unirun.testing import mlp, multi_io

Array = np.ndarray[Any, Any]


class _Recording(ReferenceBackend):
    """The reference backend, remembering the mapping object each call got."""

    name = "recording"
    seen: list[Mapping[str, Array]] = []  # noqa: RUF012

    def load(self, request: Any) -> Any:
        executable = super().load(request)
        inner = executable.infer

        def infer(feeds: Mapping[str, Array]) -> Sequence[Array]:
            _Recording.seen.append(feeds)
            return inner(feeds)

        executable.infer = infer
        return executable


@pytest.fixture
def recording() -> Iterator[None]:
    unirun.register_backend(_Recording())
    _Recording.seen.clear()
    yield
    unirun.unregister_backend("recording")


def test_a_bare_array_reaches_the_engine_in_a_dict_of_one(recording: None) -> None:
    with unirun.load(mlp(), backend="recording", cache=False) as model:
        x = np.ones((2, 16), np.float32)
        want = model({"x": x})["probs"]
        np.testing.assert_array_equal(model(x)["probs"], want)
    assert [list(feeds) for feeds in _Recording.seen] == [["x"], ["x"]]
    assert _Recording.seen[1]["x"] is x  # the caller's array itself, not a copy


def test_a_valid_dict_reaches_the_engine_untouched(recording: None) -> None:
    with unirun.load(mlp(), backend="recording", cache=False) as model:
        feeds = {"x": np.ones((2, 16), np.float32)}
        model(feeds)  # first call: the full checks accept (2, 16)
        model(feeds)
        model({"x": np.zeros((2, 16), np.float32)})
    _, second, third = _Recording.seen
    assert second is feeds and third is not feeds  # the caller's dict, not a copy
    assert third["x"].shape == (2, 16)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.ones((2, 16), np.float64), "dtype float64"),
        (np.ones((3, 32), np.float32)[:2, ::2], None),  # same shape, not C-contiguous: copied
        (np.ones((2, 17), np.float32), "dimension 1"),
        (np.ones((16,), np.float32), "rank 1"),
        ([[1.0] * 16] * 2, None),  # a list: converted
    ],
)
def test_after_warming_up_bad_feeds_are_still_refused_or_converted(
    bad: Any, match: str | None
) -> None:
    with unirun.load(mlp(), backend="reference", cache=False) as model:
        good = np.ones((2, 16), np.float32)
        want = model({"x": good})["probs"]
        model({"x": good})  # the hot path is warm for (2, 16)
        if match is None:
            got = model({"x": bad})["probs"]
            np.testing.assert_array_equal(got, want)
        else:
            with pytest.raises(InputError, match=match):
                model({"x": bad})
        # the same feed alone, as the one input's array, and in a list
        model(good)  # warm for a bare array too
        model([good])
        if match is None:
            np.testing.assert_array_equal(model(bad)["probs"], want)
        else:
            with pytest.raises(InputError, match=match):
                model(bad)
        if match is None and not isinstance(bad, list):
            np.testing.assert_array_equal(model([bad])["probs"], want)
        elif match is not None:
            with pytest.raises(InputError, match=match):
                model([bad])
        with pytest.raises(InputError, match="unknown input name"):
            model({"x": good, "extra": good})
        with pytest.raises(InputError, match="missing input"):
            model({"z": good})


def test_device_like_objects_never_take_the_hot_path() -> None:
    """An object that looks like an array (dtype, shape, flags) but is not a numpy array goes
    through the full normaliser, which refuses device memory."""

    class DeviceArray:
        def __init__(self, like: Array) -> None:
            self.dtype, self.shape, self.flags = like.dtype, like.shape, like.flags

        def __dlpack_device__(self) -> tuple[int, int]:
            return (2, 0)  # kDLCUDA

        def __dlpack__(self, **kwargs: Any) -> Any:
            raise AssertionError("never read")

    with unirun.load(mlp(), backend="reference", cache=False) as model:
        x = np.ones((2, 16), np.float32)
        model({"x": x})
        with pytest.raises(InputError, match="lives on a device"):
            model({"x": DeviceArray(x)})


def test_several_outputs_and_inputs_keep_their_order_and_checks() -> None:
    with unirun.load(multi_io(), backend="reference", cache=False) as model:
        feeds = {s.name: np.ones([d if isinstance(d, int) else 2 for d in s.shape], s.dtype.numpy)
                 for s in model.inputs}  # fmt: skip
        first = model(feeds)
        second = model(feeds)
        assert list(first) == list(second) == [s.name for s in model.outputs]
        for name in first:
            np.testing.assert_array_equal(first[name], second[name])
        # the same arrays in input order, warm; swapped, each is refused by its dtype
        ordered = [feeds[s.name] for s in model.inputs]
        for _ in range(2):
            positional = model(ordered)
            for name in first:
                np.testing.assert_array_equal(positional[name], first[name])
        with pytest.raises(InputError, match="dtype bool"):
            model(ordered[::-1])
        with pytest.raises(InputError, match="dtype bool"):
            model(tuple(ordered[::-1]))


def test_a_stateful_model_streams_the_same_through_every_form_of_feeds() -> None:
    """A streaming LSTM model with a scalar int64 input and state fed back (ONNX Runtime):
    dicts, lists and tuples in input order give the same results, warm or not, and a scalar
    of the wrong dtype in a list is still refused."""
    from unirun.testing import streaming_vad

    rng = np.random.default_rng(0)
    chunks = [rng.standard_normal((1, 512)).astype(np.float32) for _ in range(4)]
    sr = np.array(16000, np.int64)
    with unirun.load(streaming_vad(), backend="onnxruntime", cache=False) as model:
        runs = []
        for form in (dict, list, tuple):
            state = np.zeros((2, 1, 32), np.float32)
            probs = []
            for chunk in chunks:
                named = {"input": chunk, "state": state, "sr": sr}
                out = model(named if form is dict else form(named.values()))
                state = out["stateN"]
                probs.append(out["output"])
            runs.append(np.concatenate(probs))
        np.testing.assert_array_equal(runs[0], runs[1])
        np.testing.assert_array_equal(runs[0], runs[2])
        with pytest.raises(InputError, match=r"'sr'.*dtype int32"):
            model([chunks[0], np.zeros((2, 1, 32), np.float32), np.array(16000, np.int32)])
