"""The TensorRT module, imported on first use, and the one logger every builder and runtime
shares (TensorRT wants a single thread-safe logger per process)."""

from __future__ import annotations

import functools
import logging
from typing import Any

from ._errors import LogCapture

log = logging.getLogger("unirun.tensorrt")

#: Error lines from TensorRT's logger, routed to the thread whose call produced them.
capture = LogCapture()


@functools.cache
def trt() -> Any:
    import tensorrt

    return tensorrt


@functools.cache
def logger() -> Any:
    module = trt()
    severity = module.ILogger.Severity

    class _Logger(module.ILogger):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            module.ILogger.__init__(self)

        def log(self, level: Any, msg: str) -> None:
            if level in (severity.INTERNAL_ERROR, severity.ERROR):
                capture.add(msg)
                log.debug("TensorRT: %s", msg)
            elif level == severity.WARNING:
                log.info("TensorRT: %s", msg)

    return _Logger()


@functools.cache
def runtime() -> Any:
    """One ``trt.Runtime`` for every plan this process deserializes."""
    return trt().Runtime(logger())


def version() -> str:
    return str(trt().__version__)
