"""Engine exceptions to unirun errors: the most specific type, a message without the trace."""

from __future__ import annotations

import re

from unirun.errors import (
    CompileError,
    InferenceError,
    InvalidModelError,
    UnirunError,
    UnsupportedModelError,
)

# Replace with what your engine says; keep one pattern per kind of failure.
_UNSUPPORTED = re.compile(r"unsupported op(?:erator)? '?(\w+)'?(?: in node '?([\w/.:-]*)'?)?")
_INVALID = re.compile(r"invalid (?:model|graph)", re.IGNORECASE)


def message(exc: BaseException) -> str:
    """The engine's message: first paragraph only, at most 600 characters."""
    text = str(exc).strip().split("\n\n", 1)[0]
    return text if len(text) <= 600 else text[:600] + " …"


def map_error(exc: Exception, stage: str) -> UnirunError:
    """The unirun error for an engine exception raised while ``stage`` (compile/load/run)."""
    text = message(exc)
    if stage == "run":
        return InferenceError(f"the engine failed while running: {text}")
    unsupported = _UNSUPPORTED.search(text)
    if unsupported:
        op, node = unsupported.group(1), unsupported.group(2) or ""
        return UnsupportedModelError(f"the engine has no operator {op}: {text}", [(node, op)])
    if _INVALID.search(text):
        return InvalidModelError(f"the engine rejected the model: {text}")
    return CompileError(f"the engine failed to {'load' if stage == 'load' else 'build'}: {text}")
