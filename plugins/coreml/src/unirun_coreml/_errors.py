"""Errors raised by the ONNX → Core ML translator and the MIL evaluator.

::

    UnsupportedOpsError   the model uses ONNX ops (or attribute combinations) with no lowering;
                          every offending node is listed at once, before any work is done
    TranslationError      a supported op could not be lowered (names the node and the reason)
    InputShapeError       ``shapes`` is missing, malformed or contradicts the model (ValueError)
    EvaluationError       the numpy evaluator met a MIL op it cannot execute

Each is a subclass of the matching unirun error (UnsupportedModelError, CompileError,
OptionsError, InferenceError), so ``except unirun.UnirunError`` catches them through the facade
and through the translator used on its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from unirun.errors import CompileError, InferenceError, OptionsError, UnsupportedModelError

__all__ = [
    "EvaluationError",
    "InputShapeError",
    "TranslationError",
    "UnsupportedOp",
    "UnsupportedOpsError",
]


class UnsupportedOp(NamedTuple):
    """One node the translator cannot lower."""

    node_name: str
    op_type: str
    domain: str


class UnsupportedOpsError(UnsupportedModelError):
    """The model uses ops the translator cannot lower; ``ops`` lists ``(node_name, op_type)``.

    ``reasons`` maps a node name to why it is unsupported when the op type itself is known but
    an attribute value is not (for example ``Resize`` in ``cubic`` mode).
    """

    def __init__(
        self,
        message: str,
        ops: Sequence[tuple[str, str]] = (),
        reasons: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, [(name, op) for name, op in ops])
        self.reasons: dict[str, str] = dict(reasons or {})


class TranslationError(CompileError):
    """A node of a supported op type could not be lowered to MIL."""

    def __init__(self, message: str, node_name: str = "", op_type: str = "") -> None:
        where = f"{op_type} node {node_name!r}: " if op_type else ""
        super().__init__(where + message)
        self.reason = message
        self.node_name = node_name
        self.op_type = op_type


class InputShapeError(OptionsError):
    """``shapes`` is missing for a dynamic input, malformed, or contradicts the model."""


class EvaluationError(InferenceError):
    """The numpy evaluator cannot execute a MIL op of the saved program."""
