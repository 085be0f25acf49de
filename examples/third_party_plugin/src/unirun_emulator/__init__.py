"""An example third-party unirun backend: ``unirun.load(model, backend="emulator", device="emu")``.

Importing this package does not import the engine (``onnx.reference``); it loads on first use.
"""

from .backend import EmulatorBackend
from .options import EmulatorOptions

__version__ = "0.1.0"
__all__ = ["EmulatorBackend", "EmulatorOptions", "__version__"]
