"""The ONNX → Core ML ML Program translator (imports coremltools)."""

from .._coremltools import coremltools

coremltools()  # install the quiet-import filter before any coremltools module loads

from ._check import check  # noqa: E402
from ._context import Context  # noqa: E402
from ._mil import Value  # noqa: E402
from ._node import Node  # noqa: E402
from ._registry import (  # noqa: E402
    find_unsupported,
    register_lowering,
    supported_ops,
    unregister_lowering,
)
from ._translator import TranslationResult, save, translate  # noqa: E402

__all__ = [
    "Context",
    "Node",
    "TranslationResult",
    "Value",
    "check",
    "find_unsupported",
    "register_lowering",
    "save",
    "supported_ops",
    "translate",
    "unregister_lowering",
]
