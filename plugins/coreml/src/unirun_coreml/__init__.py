"""unirun's Core ML plugin: an ONNX → Core ML ML Program translator, and a numpy evaluator
that executes saved ML Programs so their numerics can be checked without a Mac.

Importing this package is cheap: coremltools is imported on first use of the translator or
the evaluator, never here.
"""

from __future__ import annotations

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


def unsupported_ops(model: Any, constant_inputs: Any = ()) -> list[UnsupportedOp]:
    """The nodes of ``model`` (an ``onnx.ModelProto``) that cannot be translated, as
    ``(node_name, op_type, domain)``; nodes computable from constants are not listed."""
    from ._translate import find_unsupported

    return find_unsupported(model, tuple(constant_inputs))[0]
