"""Threads and lifecycle: concurrent calls at the declared thread-safety level, ``map`` and
``infer_async`` in order, ``close()`` and calls racing it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from unirun.errors import ModelClosedError

from .. import models
from .._support import feeds_for, normal
from .base import ConformanceBase, Engine

__all__ = ["LifecycleTests"]


class LifecycleTests(ConformanceBase):
    """Is the executable safe across threads and through ``close()``?"""

    def test_concurrent_calls(self, engine: Engine) -> None:
        """Calls from many threads at once (the core serialises or pools as declared) give the
        results of serial calls; ``infer_async`` and ``map`` keep their order.

        Troubleshooting: declare ``ThreadSafety.CONCURRENT`` only if one executable really
        runs overlapping ``infer`` calls safely; with ``CONTEXTS``, ``create_context()`` must
        return independent contexts (own buffers, own request objects); otherwise ``SERIAL``.
        """
        model = models.conv_net(size=8)
        batches = [feeds_for(model, {"N": n}) for n in (1, 2, 3, 4, 2, 1)]
        shapes = self.shapes_for(engine, model, {"N": 4})
        with self.load(engine, model, shapes=shapes) as m:
            expected = [m(b)["logits"] for b in batches]
            errors: list[BaseException] = []
            start = threading.Barrier(len(batches))

            def worker(i: int) -> None:
                try:
                    start.wait()
                    for _ in range(4):
                        np.testing.assert_allclose(
                            m(batches[i])["logits"], expected[i], rtol=1e-6, atol=1e-6
                        )
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(batches))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert not errors, errors[0]
            mapped = [r["logits"] for r in m.map(batches)]
            futures = [m.infer_async(b) for b in batches]
            for got, fut, want in zip(mapped, futures, expected, strict=True):
                np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
                np.testing.assert_allclose(fut.result()["logits"], want, rtol=1e-6, atol=1e-6)

    def test_close(self, engine: Engine) -> None:
        """After ``close()`` every call raises ModelClosedError; closing twice is harmless; the
        context manager closes.

        Troubleshooting: ``Executable.close()`` releases the engine objects and must be
        idempotent; a call after it must not reach a freed engine object.
        """
        model = models.mlp()
        x = normal((2, 16), 5)
        with self.load(engine, model, shapes=self.shapes_for(engine, model, {"batch": 2})) as m:
            m({"x": x})
        assert m.closed
        m.close()
        with pytest.raises(ModelClosedError):
            m({"x": x})
        with pytest.raises(ModelClosedError):
            m.infer_async({"x": x})

    def test_close_while_running(self, engine: Engine) -> None:
        """``close()`` while other threads are inside ``infer``: each call returns a result or
        raises ModelClosedError, nothing else, and nothing crashes.

        Troubleshooting: let running calls keep the engine objects alive (hold references in
        the call, not only on the executable) and make ``close()`` drop the executable's own
        references only.
        """
        model = models.conv_net(size=8)
        feeds = feeds_for(model, {"N": 2})
        m = self.load(engine, model, shapes=self.shapes_for(engine, model, {"N": 2}))
        unexpected: list[BaseException] = []
        started = threading.Event()

        def worker() -> None:
            for _ in range(50):
                try:
                    started.set()
                    m(feeds)
                except ModelClosedError:
                    return
                except BaseException as exc:
                    unexpected.append(exc)
                    return

        threads = [threading.Thread(target=worker) for _ in range(3)]
        for t in threads:
            t.start()
        started.wait(5)
        m.close()
        for t in threads:
            t.join()
        assert not unexpected, repr(unexpected[0])
