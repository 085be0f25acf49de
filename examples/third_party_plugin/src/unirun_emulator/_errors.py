"""The evaluator's exceptions to unirun errors (the core chains them and trims messages)."""

from __future__ import annotations

from unirun.backend import Stage
from unirun.errors import InferenceError, InvalidModelError, UnirunError, UnsupportedModelError


def map_error(exc: BaseException, stage: Stage) -> UnirunError | None:
    """The unirun error for an exception of ``onnx.reference`` raised while ``stage``."""
    text = str(exc).strip().split("\n\n", 1)[0]
    if stage == "run":
        return InferenceError(f"the emulator failed while running: {type(exc).__name__}: {text}")
    if isinstance(exc, NotImplementedError):
        return UnsupportedModelError(f"the emulator cannot run this model: {text}")
    if type(exc).__name__ == "ValidationError":  # onnx.checker
        return InvalidModelError(f"the model is not a valid ONNX graph: {text}")
    return None
