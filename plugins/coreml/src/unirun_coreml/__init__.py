"""unirun's Core ML plugin: an ONNX → Core ML ML Program translator, and a numpy evaluator
that executes saved ML Programs so their numerics can be checked without a Mac.

Importing this package is cheap: coremltools is imported on first use of the translator or
the evaluator, never here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._errors import (
    EvaluationError,
    InputShapeError,
    TranslationError,
    UnsupportedOp,
    UnsupportedOpsError,
)
from ._iomap import METADATA_KEY, TensorMapping

if TYPE_CHECKING:
    from ._evaluate import Evaluator, evaluate
    from ._translate import (
        Context,
        Node,
        TranslationResult,
        register_lowering,
        save,
        translate,
        unregister_lowering,
    )

__version__ = "0.1.0"

__all__ = [
    "METADATA_KEY",
    "Context",
    "EvaluationError",
    "Evaluator",
    "InputShapeError",
    "Node",
    "TensorMapping",
    "TranslationError",
    "TranslationResult",
    "UnsupportedOp",
    "UnsupportedOpsError",
    "__version__",
    "evaluate",
    "explain_unsupported",
    "register_lowering",
    "save",
    "supported_ops",
    "translate",
    "unregister_lowering",
    "unsupported_ops",
]

_LAZY = {
    "Evaluator": "_evaluate",
    "evaluate": "_evaluate",
    "Context": "_translate",
    "Node": "_translate",
    "TranslationResult": "_translate",
    "register_lowering": "_translate",
    "save": "_translate",
    "translate": "_translate",
    "unregister_lowering": "_translate",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def supported_ops() -> list[str]:
    """Every ONNX op type with a lowering (``domain::Op`` for non-default domains)."""
    from ._translate import supported_ops as _supported

    return _supported()


def unsupported_ops(
    model: Any,
    constant_inputs: Any = (),
    *,
    shapes: Mapping[str, Any] | None = None,
    deployment_target: Any = "iOS17",
) -> list[UnsupportedOp]:
    """The nodes of ``model`` (an ``onnx.ModelProto``) that ``translate`` would refuse with
    these arguments, as ``(node_name, op_type, domain)`` in graph order; nothing is converted.

    The check is the translator's own: ops and attribute values without a lowering, then each
    node lowered for ``shapes`` (dynamic dims without shapes stay symbolic), so a node whose
    lowering fails for these shapes is listed and the nodes after it that depend on it are
    not. Nodes computable from constants are never listed. ``constant_inputs`` is a mapping of
    values, or names alone (then the nodes computed from them are not checked). Core ML's own
    conversion passes are not run: an empty list means no problem is known.
    """
    return list(
        explain_unsupported(
            model, constant_inputs, shapes=shapes, deployment_target=deployment_target
        )
    )


def explain_unsupported(
    model: Any,
    constant_inputs: Any = (),
    *,
    shapes: Mapping[str, Any] | None = None,
    deployment_target: Any = "iOS17",
) -> dict[UnsupportedOp, str]:
    """Like :func:`unsupported_ops`: each refused node → why, in graph order."""
    from ._translate import check

    ops, reasons = check(
        model, shapes=shapes, constant_inputs=constant_inputs, deployment_target=deployment_target
    )
    return {op: reasons[op.node_name] for op in ops}
