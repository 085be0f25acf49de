"""unirun: one API to run ONNX models on whichever inference engine fits the machine.

::

    import unirun
    with unirun.load("model.onnx") as model:      # ONNX Runtime on the CPU unless told otherwise
        outputs = model({"x": x})

``import unirun`` imports no engine SDK; plugins are discovered lazily through the
``unirun.backends`` entry-point group.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    ArtifactError,
    BackendNotFoundError,
    BackendUnavailableError,
    CacheError,
    CompileError,
    DeviceError,
    InferenceError,
    InputError,
    InvalidModelError,
    ModelClosedError,
    OptionsError,
    PluginIncompatibleError,
    UnirunError,
    UnsupportedModelError,
)

if TYPE_CHECKING:
    from ._registry import BackendInfo, backends, register_backend, unregister_backend
    from .api import compile, load, predict
    from .artifact import Artifact, Manifest
    from .backend import API_VERSION, Capabilities, DeviceInfo, Probe, ThreadSafety
    from .cache import default_cache_dir
    from .device import Device
    from .device_tensor import DeviceTensor
    from .dtypes import DType
    from .model import Model
    from .options import CompileOptions, ShapeRange
    from .tensor import TensorSpec
    from .values import ValueKind

# The rest of the public names are imported on first use (PEP 562), so ``import unirun`` costs
# next to nothing and a program pays for numpy, pydantic and the registry only when it uses
# them. Keep this table and the TYPE_CHECKING imports above in step (a test checks both).
_LAZY: dict[str, str] = {
    "API_VERSION": "backend",
    "Artifact": "artifact",
    "BackendInfo": "_registry",
    "Capabilities": "backend",
    "CompileOptions": "options",
    "DType": "dtypes",
    "Device": "device",
    "DeviceInfo": "backend",
    "DeviceTensor": "device_tensor",
    "Manifest": "artifact",
    "Model": "model",
    "Probe": "backend",
    "ShapeRange": "options",
    "TensorSpec": "tensor",
    "ThreadSafety": "backend",
    "ValueKind": "values",
    "backends": "_registry",
    "compile": "api",
    "default_cache_dir": "cache",
    "load": "api",
    "predict": "api",
    "register_backend": "_registry",
    "unregister_backend": "_registry",
}
# Submodules an eager ``import unirun`` used to load, so ``unirun.source.graph_inputs`` after a
# plain ``import unirun`` keeps working.
_SUBMODULES = frozenset(
    {
        "_registry",
        "api",
        "artifact",
        "backend",
        "cache",
        "device",
        "dtypes",
        "model",
        "options",
        "source",
        "tensor",
    }
)


if not TYPE_CHECKING:  # type checkers see the imports above, and flag unknown names

    def __getattr__(name: str) -> Any:
        module = _LAZY.get(name)
        if module is not None:
            value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
            globals()[name] = value  # later lookups no longer come here
            return value
        if name in _SUBMODULES:
            return importlib.import_module(f"{__name__}.{name}")
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "API_VERSION",
    "Artifact",
    "ArtifactError",
    "BackendInfo",
    "BackendNotFoundError",
    "BackendUnavailableError",
    "CacheError",
    "Capabilities",
    "CompileError",
    "CompileOptions",
    "DType",
    "Device",
    "DeviceError",
    "DeviceInfo",
    "DeviceTensor",
    "InferenceError",
    "InputError",
    "InvalidModelError",
    "Manifest",
    "Model",
    "ModelClosedError",
    "OptionsError",
    "PluginIncompatibleError",
    "Probe",
    "ShapeRange",
    "TensorSpec",
    "ThreadSafety",
    "UnirunError",
    "UnsupportedModelError",
    "ValueKind",
    "__version__",
    "backends",
    "compile",
    "default_cache_dir",
    "load",
    "predict",
    "register_backend",
    "unregister_backend",
]
