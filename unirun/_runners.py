"""How a :class:`~unirun.model.Model` calls its engine, by the backend's thread safety: the
executable's own ``infer`` (concurrent), a pool of contexts (one per concurrent call), or one
call at a time under a lock."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .backend import Context, ThreadSafety

__all__ = ["Runner", "make_runner"]

Array = np.ndarray[Any, Any]
Runner = Callable[[Mapping[str, Array]], Sequence[Array]]


def make_runner(
    executable: Any, safety: ThreadSafety, free: deque[Context], lock: threading.Lock
) -> Runner:
    """The engine call for ``executable``: contexts are pooled in ``free`` (the model closes
    them), a serial engine runs under ``lock`` (which the device path shares)."""
    # The core checked at load that the executable has what its thread safety needs.
    if safety is ThreadSafety.CONCURRENT:
        concurrent: Runner = executable.infer
        return concurrent
    if safety is ThreadSafety.CONTEXTS:
        create = executable.create_context

        def run_pooled(feeds: Mapping[str, Array]) -> Sequence[Array]:
            try:
                ctx = free.pop()
            except IndexError:
                ctx = create()
            try:
                return ctx.infer(feeds)
            finally:
                free.append(ctx)

        return run_pooled
    infer: Runner = executable.infer

    def run_serial(feeds: Mapping[str, Array]) -> Sequence[Array]:
        with lock:
            return infer(feeds)

    return run_serial
