"""unirun: one API to run ONNX models on whichever inference engine fits the machine.

::

    import unirun
    with unirun.load("model.onnx") as model:      # ONNX Runtime on the CPU unless told otherwise
        outputs = model({"x": x})

``import unirun`` imports no engine SDK; plugins are discovered lazily through the
``unirun.backends`` entry-point group.
"""

from __future__ import annotations

from ._registry import BackendInfo, backends, register_backend, unregister_backend
from ._version import __version__
from .api import compile, load, predict
from .artifact import Artifact, Manifest
from .backend import API_VERSION, Capabilities, DeviceInfo, Probe, ThreadSafety
from .cache import default_cache_dir
from .device import Device
from .dtypes import DType
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
from .model import Model
from .options import CompileOptions, ShapeRange
from .tensor import TensorSpec

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
    "__version__",
    "backends",
    "compile",
    "default_cache_dir",
    "load",
    "predict",
    "register_backend",
    "unregister_backend",
]
