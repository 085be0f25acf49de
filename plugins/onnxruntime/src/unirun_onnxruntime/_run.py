"""The call that runs a session: ONNX Runtime's compiled ``run`` itself where it can be.

``InferenceSession.run`` is a Python wrapper over the compiled session's ``run``. On every call
it lists the feed's keys to look for missing inputs, checks that no feed is an ``OrtValue`` of
another session, asks whether WebGPU graph capture is on, lists the output names and, when a
provider fails, silently re-creates the session on the fallback providers. On a small model
that is about a quarter of the call (about 1.5 µs of 5.5 µs on a 2-core AMD EPYC, ONNX Runtime
1.32; ``python -m bench.hot_path``). None of it is needed under unirun:

* the core hands over complete, checked feeds of numpy arrays (or the lists and dicts of
  sequence and map inputs), never ``OrtValue`` s;
* the output names are known at load;
* unirun does not enable graph capture;
* a CUDA session must run on CUDA or fail, unless ``allow_cpu_fallback`` asks for ONNX Runtime's
  own fallback. Only then is the wrapper kept.

So ``infer`` calls the compiled ``run`` directly, with the output names in the session's order
and no run options. That ``run`` is the private ``InferenceSession._sess``. It has been there
since ONNX Runtime 1.0, but it is not a public API, so it is looked up at load. A session
without it keeps the public call. If a later ONNX Runtime changes its signature, the first call
that raises ``TypeError`` retries through the public ``run``: when that succeeds, the session
stays on the public call from then on. The plugin's ``tests/test_run.py`` fails if this ONNX
Runtime no longer takes the direct path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["Infer", "session_runner"]

log = logging.getLogger("unirun.onnxruntime")

Array = np.ndarray[Any, Any]
Infer = Callable[[Mapping[str, Array]], Sequence[Array]]


def session_runner(session: Any, *, keep_wrapper: bool) -> tuple[Infer, bool]:
    """``infer(feeds)`` for ``session`` and whether it calls the compiled ``run`` directly.
    ``keep_wrapper``: use the public ``InferenceSession.run`` anyway (its provider fallback is
    wanted)."""
    public: Callable[[Any, Mapping[str, Array]], Sequence[Array]] = session.run

    def infer_public(feeds: Mapping[str, Array]) -> Sequence[Array]:
        return public(None, feeds)

    compiled = getattr(getattr(session, "_sess", None), "run", None)
    if keep_wrapper or not callable(compiled):
        return infer_public, False
    names = [meta.name for meta in session.get_outputs()]
    direct: Callable[[list[str], Mapping[str, Array], None], Sequence[Array]] = compiled

    def infer(feeds: Mapping[str, Array]) -> Sequence[Array]:
        nonlocal direct
        try:
            return direct(names, feeds, None)
        except TypeError:
            if direct is not compiled:
                raise
            # A signature this module does not know: if the public call takes the same feeds,
            # stay on it; otherwise the error is the feeds' and goes to the caller.
            results = public(None, feeds)
            log.debug("ONNX Runtime's compiled run refused its arguments: public run from now")
            direct = _public_direct(public)
            return results

    return infer, True


def _public_direct(
    public: Callable[[Any, Mapping[str, Array]], Sequence[Array]],
) -> Callable[[list[str], Mapping[str, Array], None], Sequence[Array]]:
    def call(names: list[str], feeds: Mapping[str, Array], options: None) -> Sequence[Array]:
        return public(names, feeds)

    return call
