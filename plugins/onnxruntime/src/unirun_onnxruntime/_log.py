"""ONNX Runtime's own log lines through Python's ``logging`` (logger ``unirun.onnxruntime``).

ONNX Runtime prints coloured, multi-line records with C++ file names to stderr. The plugin
installs a callback on ONNX Runtime's default logger (``onnxruntime.set_default_logger_callback``)
that logs each record, cleaned, one step below ONNX Runtime's rating: its errors at WARNING, its
warnings (notes about its own internals) at INFO, its info at DEBUG, its verbose records at
level 5. Sessions are created with the severity the logger's level lets through, so nothing is
even formatted that would be dropped. The callback is process-wide: ONNX Runtime sessions created
outside unirun log through it too. Records from ONNX Runtime's own worker threads bypass any
callback (ONNX Runtime's rule); at the default level none are emitted.

While a session is being created, records are held back: if creation fails, the raised error
carries the message, and the held records go out at DEBUG instead of repeating it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ._errors import clean

log = logging.getLogger("unirun.onnxruntime")

#: Below DEBUG: ONNX Runtime's verbose records (thread affinity, every kernel chosen) come
#: partly from its worker threads, which bypass the callback; only a logger set this low asks.
VERBOSE = 5
#: ONNX Runtime severity (0 verbose, 1 info, 2 warning, 3 error, 4 fatal) → logging level
LEVELS = (VERBOSE, logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR)

_state = threading.local()
_lock = threading.Lock()
_installed: list[bool] = []


def severity() -> int:
    """The lowest ONNX Runtime severity whose records ``log`` would show now."""
    level = log.getEffectiveLevel()
    return next((s for s, mapped in enumerate(LEVELS) if mapped >= level), len(LEVELS) - 1)


def install(ort: Any) -> int:
    """Route ONNX Runtime's default logger into ``log`` (once per process); returns the
    severity for the session about to be created."""
    wanted = severity()
    with _lock:
        if not _installed:
            try:
                ort.set_default_logger_callback(_record, wanted)
            except (AttributeError, RuntimeError, TypeError):  # onnxruntime without callbacks
                ort.set_default_logger_severity(max(wanted, 3))
            _installed.append(True)
        else:
            ort.set_default_logger_severity(wanted)
    return wanted


@contextmanager
def held() -> Iterator[None]:
    """Hold this thread's records until the block ends; at DEBUG if it raised."""
    records: list[tuple[int, str]] = []
    outer = getattr(_state, "records", None)
    _state.records = records
    failed = False
    try:
        yield
    except BaseException:
        failed = True
        raise
    finally:
        _state.records = outer
        for level, text in records:
            log.log(logging.DEBUG if failed else level, "%s", text)


def _record(severity: int, category: str, logid: str, code_location: str, message: str) -> None:
    level = LEVELS[min(max(severity, 0), len(LEVELS) - 1)]
    if not log.isEnabledFor(level) and getattr(_state, "records", None) is None:
        return
    text = clean(message)
    records = getattr(_state, "records", None)
    if records is not None:
        records.append((level, text))
    else:
        log.log(level, "%s", text)
