"""The errors unirun raises.

Every error is a subclass of :class:`UnirunError`, so ``except unirun.UnirunError`` catches
anything the library decided to raise. Engine exceptions never reach the caller raw: plugins map
them to the most specific type below and chain the original (``raise ... from exc``), so the
engine's own message stays available in ``__cause__``.

::

    UnirunError
    ├── BackendNotFoundError       no backend of that name is installed or registered
    ├── BackendUnavailableError    installed, but cannot run here (missing library, wrong OS…)
    ├── PluginIncompatibleError    the plugin speaks another contract API version, or is broken
    ├── OptionsError (ValueError)  compile options, shapes or plugin options are invalid
    ├── InvalidModelError          the model is not a readable ONNX model (corrupt, truncated…)
    ├── UnsupportedModelError      readable, but uses what the backend cannot run (names the ops)
    ├── CompileError               the engine failed to build the model
    ├── ArtifactError              a saved artifact is damaged, tampered or built for elsewhere
    │   └── CacheError             the compile cache's folder cannot be used, or a lock timed out
    ├── DeviceError                the requested device does not exist or cannot be used
    ├── InputError (ValueError)    a feed does not match the model's inputs
    └── InferenceError             the engine failed while running
        └── ModelClosedError       the model was used after ``close()``
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pathlib costs `import unirun` ~5 ms; callers pass Paths
    from pathlib import Path

__all__ = [
    "ArtifactError",
    "BackendNotFoundError",
    "BackendUnavailableError",
    "CacheError",
    "CompileError",
    "DeviceError",
    "InferenceError",
    "InputError",
    "InvalidModelError",
    "ModelClosedError",
    "OptionsError",
    "PluginIncompatibleError",
    "UnirunError",
    "UnsupportedModelError",
    "no_space",
    "out_of_space",
]


class UnirunError(Exception):
    """Base class of every error unirun raises on purpose."""


class BackendNotFoundError(UnirunError):
    """No backend with the requested name is installed or registered."""


class BackendUnavailableError(UnirunError):
    """The backend is installed but cannot run on this machine; the message says why."""


class PluginIncompatibleError(UnirunError):
    """The plugin cannot be used here: another contract API version, or it failed to load."""


class OptionsError(UnirunError, ValueError):
    """Compile options, ``shapes`` or plugin options are invalid for this model or backend."""


class InvalidModelError(UnirunError):
    """The source is not a readable ONNX model (corrupt, truncated, wrong file)."""


class UnsupportedModelError(UnirunError):
    """The model is valid ONNX but uses operators or types the backend cannot run.

    ``ops`` lists the offending operators as ``(node_name, op_type)`` pairs when known.
    """

    def __init__(self, message: str, ops: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.ops: list[tuple[str, str]] = list(ops)


class CompileError(UnirunError):
    """The engine failed to build the model for the requested target."""


class ArtifactError(UnirunError):
    """A compiled artifact is damaged, tampered with, or was built for another engine or device.

    ``field`` names the manifest field that did not match, when the cause is a mismatch.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class CacheError(ArtifactError):
    """The compile cache cannot be used: its folder is a file or unwritable, or another process
    held a build lock longer than the lock timeout. ``path`` is the file or folder concerned."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class DeviceError(UnirunError):
    """The requested device does not exist, is not supported by the backend, or failed."""


class InputError(UnirunError, ValueError):
    """A feed does not match the model: unknown or missing name, dtype, rank or dimension.

    ``name`` is the model input concerned, when there is one.
    """

    def __init__(self, message: str, name: str | None = None) -> None:
        super().__init__(message)
        self.name = name


class InferenceError(UnirunError):
    """The engine failed while running a request."""


class ModelClosedError(InferenceError):
    """The model was used after ``close()``."""


# -- a full disk, for plugins: engines report it in their own words ------------------------------

_FREE = "free some space there or point unirun's cache at another disk (UNIRUN_CACHE_DIR)"
_NO_SPACE = {
    errno.ENOSPC: ("no space left on device", _FREE),
    errno.EDQUOT: ("no space left on device (disk quota exceeded)", _FREE),
    errno.EFBIG: ("no space left for the file", "raise the file size limit (ulimit -f)"),
}


def no_space(err: OSError, directory: Path, doing: str) -> CompileError | None:
    """A ``CompileError`` saying the disk (or the file size limit) is full, if ``err`` says so:
    ``"no space left on device: cannot {doing} into {directory} (…); free some space…"``."""
    if err.errno not in _NO_SPACE:
        return None
    reason, fix = _NO_SPACE[err.errno]
    return CompileError(f"{reason}: cannot {doing} into {directory} ({err.strerror}); {fix}")


def out_of_space(directory: Path, size: int, doing: str) -> CompileError | None:
    """:func:`no_space` for an engine that failed to write ``size`` bytes into ``directory``
    and said so in its own words ("Protobuf serialization failed", "basic_ios::clear"): writes
    that many bytes there (then removes them) to tell a full disk from other causes."""
    probe = directory / ".unirun-space-probe"
    try:
        with probe.open("wb") as fh:
            chunk = bytes(min(size, 1 << 20) or 1)
            for _ in range(0, max(size, 1), len(chunk)):
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as err:
        return no_space(err, directory, doing)
    finally:
        probe.unlink(missing_ok=True)
    return None
