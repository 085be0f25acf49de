"""Engine exceptions to unirun errors: the most specific type, a message without the trace.

The core calls :func:`map_error` (through ``TemplateBackend.map_error``) with whatever the
engine raised, chains the original and cuts long messages; returning None leaves the default
for the stage (``CompileError``, ``ArtifactError`` or ``InferenceError``).
"""

from __future__ import annotations

import re

from unirun.backend import Stage
from unirun.errors import (
    InferenceError,
    InvalidModelError,
    UnirunError,
    UnsupportedModelError,
)

# Replace with what your engine says; keep one pattern per kind of failure.
_UNSUPPORTED = re.compile(r"unsupported op(?:erator)? '?(\w+)'?(?: in node '?([\w/.:-]*)'?)?")
_INVALID = re.compile(r"invalid (?:model|graph)", re.IGNORECASE)


def map_error(exc: BaseException, stage: Stage) -> UnirunError | None:
    """The unirun error for an engine exception raised while ``stage`` (compile/load/run)."""
    text = str(exc).strip().split("\n\n", 1)[0]  # the first paragraph: no engine trace
    if stage == "run":
        return InferenceError(f"the engine failed while running: {text}")
    unsupported = _UNSUPPORTED.search(text)
    if unsupported:
        op, node = unsupported.group(1), unsupported.group(2) or ""
        return UnsupportedModelError(f"the engine has no operator {op}: {text}", [(node, op)])
    if _INVALID.search(text):
        return InvalidModelError(f"the engine rejected the model: {text}")
    return None
