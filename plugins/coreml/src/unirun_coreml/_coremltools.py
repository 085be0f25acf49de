"""Lazy, quiet access to coremltools.

On Linux ``import coremltools`` logs "Failed to load _MLModelProxy …" warnings because the
native Core ML bridge exists only on macOS, "torch version … has not been tested" when an
unrelated torch is installed, and "scikit-learn version … is not supported" when a newer
scikit-learn is (its scikit-learn converter, which unirun never uses); they are noise here,
so a filter on the coremltools logger drops exactly those records. ``quiet()`` hides the
progress bars and chatter that ``ct.convert`` writes to stderr while converting.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from types import ModuleType

_log = logging.getLogger("unirun_coreml")


def _drop_missing_proxy(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    if message.startswith("Failed to load") and "Proxy" in message:
        return False
    # We never use coremltools' PyTorch/TensorFlow/scikit-learn frontends, so their version
    # checks are noise.
    if message.startswith("scikit-learn version") and "is not supported" in message:
        return False
    return "has not been tested with coremltools" not in message


def coremltools() -> ModuleType:
    logger = logging.getLogger("coremltools")
    if _drop_missing_proxy not in logger.filters:
        logger.addFilter(_drop_missing_proxy)
    import coremltools as ct

    module: ModuleType = ct
    return module


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Send coremltools' stderr output (tqdm bars, warnings) to this package's debug log."""
    buffer = io.StringIO()
    logger = logging.getLogger("coremltools")
    handler = logging.StreamHandler(buffer)
    # Without a handler of its own, a coremltools warning would reach logging's last-resort
    # stderr handler; keep it, at debug level, in our log instead.
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with contextlib.redirect_stderr(buffer), warnings.catch_warnings():
            # ct.convert leaves a TemporaryDirectory to the garbage collector, which warns as
            # the call returns; nothing for our callers to act on.
            warnings.filterwarnings(
                "ignore", message="Implicitly cleaning up", category=ResourceWarning
            )
            yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
        text = buffer.getvalue().strip()
        if text:
            _log.debug("coremltools said:\n%s", text)
