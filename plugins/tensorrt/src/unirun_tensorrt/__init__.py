"""NVIDIA TensorRT for unirun: ``unirun.load(model, backend="tensorrt", device="cuda")``.

Importing this package imports neither TensorRT nor CUDA; they load on first use, and the
backend reports itself unavailable, with the reason and the fix, where they are missing.
"""

from .backend import TensorRTBackend
from .options import TensorRTOptions

__version__ = "0.1.0"
__all__ = ["TensorRTBackend", "TensorRTOptions", "__version__"]
