"""Closing a model with work pending or from inside that work, and errors from ``map``."""

from __future__ import annotations

import threading
from concurrent.futures import CancelledError, Future
from typing import Any

import numpy as np
import pytest

import unirun
from unirun import InputError, ModelClosedError
from unirun.testing import conv_net

ENGINES = [
    b.name
    for b in unirun.backends()
    if b.available and b.name in ("reference", "onnxruntime", "openvino")
]


def _images(count: int) -> list[np.ndarray[Any, Any]]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal((1, 3, 8, 8)).astype(np.float32) for _ in range(count)]


@pytest.mark.parametrize("backend", ENGINES)
def test_close_lets_submitted_work_finish(backend: str) -> None:
    """20 ``infer_async`` calls pending at ``close()`` all complete (they all failed before)."""
    images = _images(20)
    with unirun.load(conv_net(size=8), backend=backend, cache=False) as m:
        expected = [m(x)["logits"] for x in images]
        futures = [m.infer_async(x) for x in images]
    assert m.closed
    for fut, want in zip(futures, expected, strict=True):
        np.testing.assert_allclose(fut.result(timeout=60)["logits"], want, rtol=1e-6)
    with pytest.raises(ModelClosedError):
        m(images[0])


def test_close_can_cancel_what_has_not_started() -> None:
    images = _images(40)
    m = unirun.load(conv_net(size=8), backend="reference", cache=False)
    futures = [m.infer_async(x) for x in images]
    m.close(cancel=True)
    done = [f for f in futures if not f.cancelled()]
    cancelled = [f for f in futures if f.cancelled()]
    assert cancelled, "a serial backend cannot have started 40 calls"
    for fut in done:
        assert fut.result()["logits"].shape == (1, 10)
    with pytest.raises(CancelledError):
        cancelled[0].result()


class _Gated:
    """An array-like input that is read only once ``gate`` opens."""

    def __init__(self, array: np.ndarray[Any, Any], gate: threading.Event) -> None:
        self.array, self.gate = array, gate

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray[Any, Any]:
        assert self.gate.wait(60)
        return self.array


@pytest.mark.parametrize("backend", ENGINES)
def test_close_from_a_done_callback(backend: str) -> None:
    """A future's done-callback runs on the model's own worker thread; closing there used to
    raise ``RuntimeError: cannot join current thread`` and leave the model half-closed."""
    m = unirun.load(conv_net(size=8), backend=backend, cache=False)
    errors: list[BaseException] = []
    closed = threading.Event()

    def close_it(fut: Future[Any]) -> None:
        try:
            m.close()
        except BaseException as exc:
            errors.append(exc)
        closed.set()

    gate = threading.Event()
    fut = m.infer_async(_Gated(_images(1)[0], gate))
    fut.add_done_callback(close_it)  # registered before the call ends: runs on the worker
    gate.set()
    assert closed.wait(60)
    assert not errors, repr(errors[0])
    assert fut.result()["logits"].shape == (1, 10)
    assert m.closed
    with pytest.raises(ModelClosedError):
        m.infer_async(_images(1)[0])
    m.close()  # still harmless


def test_map_and_infer_async_after_close_raise_model_closed() -> None:
    m = unirun.load(conv_net(size=8), backend="reference", cache=False)
    m.close()
    with pytest.raises(ModelClosedError):
        next(m.map(_images(2)))
    with pytest.raises(ModelClosedError):
        m.infer_async(_images(1)[0])
    assert m._pool is None  # no thread pool was started for a closed model


def test_map_interrupted_by_close_raises_model_closed() -> None:
    m = unirun.load(conv_net(size=8), backend="reference", cache=False)
    results = m.map(_images(50), in_flight=2)
    assert next(results)["logits"].shape == (1, 10)
    m.close()
    with pytest.raises(ModelClosedError):
        for _ in results:
            pass


def test_an_error_in_map_names_the_item() -> None:
    """Issue 9: which of the mapped feeds failed."""
    feeds = _images(5)
    feeds[3] = feeds[3][:, :2]  # two channels instead of three
    with unirun.load(conv_net(size=8), backend="reference", cache=False) as m:
        results = m.map(feeds)
        for _ in range(3):
            next(results)
        with pytest.raises(InputError, match=r"map\(\) item 3: input 'image'") as info:
            next(results)
    assert info.value.name == "image"
