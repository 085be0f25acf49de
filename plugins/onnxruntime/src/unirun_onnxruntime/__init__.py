"""ONNX Runtime for unirun: ``unirun.load(model, backend="onnxruntime")``.

Importing this package does not import onnxruntime; the engine loads on first use.
"""

from .backend import OnnxRuntimeBackend
from .options import OnnxRuntimeOptions

__version__ = "0.1.0"
__all__ = ["OnnxRuntimeBackend", "OnnxRuntimeOptions", "__version__"]
