"""OpenVINO for unirun: ``unirun.load(model, backend="openvino", device="cpu")``.

Importing this package does not import openvino; the engine loads on first use.
"""

from .backend import OpenVINOBackend
from .options import OpenVINOOptions

__version__ = "0.1.0"
__all__ = ["OpenVINOBackend", "OpenVINOOptions", "__version__"]
