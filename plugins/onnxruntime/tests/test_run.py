"""How the plugin calls a session: ONNX Runtime's compiled ``run`` directly (no Python wrapper
between), the public ``InferenceSession.run`` where ONNX Runtime's provider fallback is wanted
or the compiled call refuses its arguments, with the same values and errors either way."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

import unirun
from unirun import InputError
from unirun.testing import multi_io
from unirun_onnxruntime._run import session_runner


def _session() -> Any:
    return ort.InferenceSession(multi_io().SerializeToString(), providers=["CPUExecutionProvider"])


def _feeds() -> dict[str, np.ndarray[Any, Any]]:
    rng = np.random.default_rng(0)
    specs = unirun.source.graph_inputs(multi_io())
    return {
        spec.name: rng.standard_normal(
            [d if isinstance(d, int) else 3 for d in spec.shape or ()]
        ).astype(spec.dtype.numpy)
        for spec in specs
    }


def test_this_onnx_runtime_is_called_directly() -> None:
    # If a new ONNX Runtime drops InferenceSession._sess, this fails: every call would pay the
    # wrapper's ~1.5 µs again (bench/hot_path.py), so the change must be seen, not absorbed.
    with unirun.load(multi_io(), backend="onnxruntime", cache=False) as model:
        assert model._executable.direct is True
        feeds = _feeds()
        got = model(feeds)
        want = _session().run(None, feeds)
        assert list(got) == [o.name for o in _session().get_outputs()]
        for value, expected in zip(got.values(), want, strict=True):
            np.testing.assert_array_equal(value, expected)


def test_the_direct_and_public_calls_give_the_same_outputs() -> None:
    session = _session()
    direct, is_direct = session_runner(session, keep_wrapper=False)
    public, is_public = session_runner(session, keep_wrapper=True)
    assert (is_direct, is_public) == (True, False)
    feeds = _feeds()
    for a, b in zip(direct(feeds), public(feeds), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_wrong_feed_is_still_an_engine_error_on_the_direct_call() -> None:
    session = _session()
    infer, _ = session_runner(session, keep_wrapper=False)
    feeds = _feeds()
    name = next(iter(feeds))
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.InvalidArgument, match="data type"):
        infer({**feeds, name: feeds[name].astype(np.float64)})
    # ... which a model never sends: its own checks refuse the feed first, with a typed error.
    model = unirun.load(multi_io(), backend="onnxruntime", cache=False)
    with model, pytest.raises(InputError, match=name):
        model({**feeds, name: feeds[name].astype(np.float64)})


class _Refusing:
    """A compiled session whose ``run`` takes other arguments, as a future ONNX Runtime's
    might."""

    def run(self, *args: Any) -> Any:
        raise TypeError("run(): incompatible function arguments")


def test_a_compiled_run_that_refuses_its_arguments_falls_back_to_the_public_call() -> None:
    real = _session()
    changed = _session()
    changed._sess = _Refusing()
    changed.run = real.run  # the public call of that future ONNX Runtime still works
    infer, is_direct = session_runner(changed, keep_wrapper=False)
    assert is_direct
    feeds = _feeds()
    want = real.run(None, feeds)
    for _ in range(2):  # the first call falls back, the second starts on the public call
        for a, b in zip(infer(feeds), want, strict=True):
            np.testing.assert_array_equal(a, b)


def test_feeds_both_calls_refuse_get_the_public_calls_error_and_the_next_call_works() -> None:
    session = _session()
    infer, _ = session_runner(session, keep_wrapper=False)
    with pytest.raises(ValueError, match="missing"):  # the public wrapper's own message
        infer({1: np.zeros(3, np.float32)})  # type: ignore[dict-item]
    feeds = _feeds()
    for a, b in zip(infer(feeds), session.run(None, feeds), strict=True):
        np.testing.assert_array_equal(a, b)
