"""The contract between the unirun core and a backend plugin.

A plugin is a distribution that names a factory in the ``unirun.backends`` entry-point group;
the core calls it with no arguments and gets an object satisfying :class:`Backend`. The core owns
everything users touch (argument parsing, feed validation, caching, artifacts, thread pools,
lifecycle); a plugin only translates between that vocabulary and its engine.

Lifecycle::

    backend = Factory()          cheap: must not import the engine SDK
    backend.probe()              may import the engine; never raises; called before anything else
    backend.devices()            only if probe() said available
    backend.compile(model, target) -> Artifact      files written into target.directory
    backend.load(artifact, device, cache_dir=...) -> Executable    any number of times
    executable.infer(feeds) ... executable.close()

Rules every plugin follows:

* **Errors.** Raise the most specific :mod:`unirun.errors` type and chain the engine's exception
  (``raise CompileError(...) from exc``). Unreadable model: ``InvalidModelError``; operators or
  types the engine lacks: ``UnsupportedModelError`` naming them; engine build failure:
  ``CompileError``; device missing or not supported: ``DeviceError``; artifact not loadable here:
  ``ArtifactError`` naming the field; failure while running: ``InferenceError``. Messages name
  the node/op/device and say what to do; they never carry a multi-frame engine trace.
* **Feeds.** The core calls ``infer`` only with a mapping holding every input by name, each a
  C-contiguous numpy array of exactly the declared dtype whose shape matches the declared rank,
  fixed dimensions and compiled bounds. The arrays belong to the caller: read them during the
  call, keep no reference after it returns, never write to them.
* **Outputs.** ``infer`` returns one array per output in ``outputs`` order. The caller owns them:
  a later call must not overwrite memory it returned (copy out of reusable engine buffers).
* **Threads.** ``Capabilities.thread_safety`` states what the executable allows; the core
  serialises or pools accordingly (see :class:`ThreadSafety`). ``close()`` may be called while
  calls on other threads are still running: keep engine objects alive until they return
  (holding references in the running call is enough) and make a second ``close()`` a no-op.
* **Optional methods.** A backend may also implement :class:`SupportsOpCheck`
  (``unsupported_ops(model, device)``: the nodes it cannot run, without compiling), which
  ``unirun inspect`` shows; the core never requires it and checks for it with ``isinstance``.
* **No side channels.** Plugins read their configuration from ``target`` only, never from
  environment variables, and write only inside ``target.directory`` and ``target.cache_dir``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from .device import Device
from .dtypes import DType
from .options import CompileOptions, Precision
from .tensor import TensorSpec

if TYPE_CHECKING:
    from pydantic import BaseModel

    from .artifact import Artifact
    from .source import OnnxModel

__all__ = [
    "API_VERSION",
    "Backend",
    "Capabilities",
    "Context",
    "DeviceInfo",
    "Executable",
    "Int8Form",
    "Probe",
    "SupportsContexts",
    "SupportsOpCheck",
    "Target",
    "ThreadSafety",
]

#: The contract version this core speaks. A plugin declares the version it was written for;
#: the core refuses (with the reason and the upgrade command) a plugin declaring another one.
API_VERSION = 1


class ThreadSafety(str, Enum):
    """How an executable may be called from several threads."""

    #: ``infer`` must never overlap: the core serialises calls with a lock.
    SERIAL = "serial"
    #: ``infer`` itself must not overlap, but ``create_context()`` returns independent
    #: :class:`Context` objects (infer requests, execution contexts); the core keeps a pool and
    #: gives each concurrent call its own.
    CONTEXTS = "contexts"
    #: ``infer`` may be called from any number of threads at once.
    CONCURRENT = "concurrent"


class Int8Form(str, Enum):
    """The shapes of an int8 ONNX model; ``Capabilities.int8_forms`` lists those an engine runs
    best. All are standard ONNX (QuantizeLinear/DequantizeLinear, DynamicQuantizeLinear), made
    by the core from one calibration (see ``docs/precision.md``)."""

    #: Q/DQ with asymmetric uint8 activations and symmetric per-channel int8 weights (7-bit
    #: where the CPU lacks a non-saturating int8 dot product): the form CPU engines fuse into
    #: int8 kernels.
    STATIC = "qdq-static"
    #: Q/DQ with symmetric int8 activations and weights, every zero point 0: TensorRT's
    #: explicit quantization.
    STATIC_SYMMETRIC = "qdq-symmetric"
    #: Int8 MatMul/Gemm weights; activations quantized on every call (ONNX Runtime's
    #: DynamicQuantizeLinear + MatMulInteger): for transformer-like models on CPUs.
    DYNAMIC = "dynamic"
    #: Int8 weights behind DequantizeLinear, float activations and math: smaller files at
    #: about fp32 speed (Core ML's weight quantization).
    WEIGHTS = "weights"


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, as data: the core and the conformance kit read it, users see it."""

    device_kinds: tuple[str, ...]
    precisions: tuple[Precision, ...] = ("fp32",)
    dtypes: tuple[DType, ...] = (DType.FLOAT32,)
    #: ``"free"``: any size at run time; ``"bounded"``: dynamic dims need ``shapes`` bounds at
    #: compile time; ``"static"``: every input shape must be fixed at compile time.
    dynamic_shapes: str = "free"
    thread_safety: ThreadSafety = ThreadSafety.SERIAL
    #: Short name of the payload format, e.g. ``"onnx"``, ``"openvino-blob"``, ``"mlpackage"``.
    artifact_format: str = "onnx"
    #: True if an artifact loads only under the engine version that built it (the core checks).
    pins_runtime_version: bool = False
    #: Preference when the user leaves ``backend="auto"``: per device kind, higher wins;
    #: a kind that is absent is never chosen automatically.
    priority: Mapping[str, int] = field(default_factory=dict)
    #: For ``precision="int8"`` (which must then be in ``precisions``): per device kind, the
    #: :class:`Int8Form` s the engine runs well, best first. The core builds them in this order
    #: and keeps the first that is accurate and not slower than fp32 here. A kind that is
    #: absent has no int8.
    int8_forms: Mapping[str, tuple[Int8Form, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Probe:
    """Whether a backend can run here; ``reason`` says why not in words a user can act on."""

    available: bool
    reason: str = ""
    version: str | None = None  #: the engine's own version (``onnxruntime.__version__``)
    #: When not ``available``: True if ``compile()`` (and ``devices()``, listing the targets it
    #: can build for) still works here, e.g. Core ML packages built on Linux for macOS.
    can_compile: bool = False


@dataclass(frozen=True)
class DeviceInfo:
    """A device a backend can use now.

    ``identity`` is a stable string naming the hardware where compiled code depends on it (GPU
    model and compute capability, say); it joins the cache key and the artifact manifest.
    """

    device: Device
    description: str = ""
    identity: str = ""


@dataclass(frozen=True)
class Target:
    """Everything ``Backend.compile`` needs to know about the build it is asked for."""

    device: Device
    options: CompileOptions
    #: The plugin's own options model, validated by the core against ``Backend.options_model``.
    plugin_options: BaseModel | None
    #: An empty directory owned by this build: write the payload files here.
    directory: Path
    #: A directory the engine may use for its own persistent caches (shared across builds).
    cache_dir: Path
    #: Manifest fields the core fills in (backend, versions, source hash); not for plugins.
    _stamp: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def finish(
        self,
        inputs: Sequence[TensorSpec],
        outputs: Sequence[TensorSpec],
        extra: Mapping[str, Any] | None = None,
        *,
        precision: Precision | None = None,
    ) -> Artifact:
        """Seal the files written to ``directory`` into an :class:`~unirun.artifact.Artifact`.

        ``extra`` is plugin data kept in the manifest (JSON values only): name maps, the engine's
        own device string, anything ``load`` will need. ``precision`` is the precision the
        engine really computes in, asked of the compiled model, when it differs from the request
        (an fp16 request run in fp32 on a CPU without fp16 units); None means "as requested".
        The core warns about (or, with ``strict_precision``, refuses) a substitution.
        """
        from .artifact import Artifact

        return Artifact._from_build(self, inputs, outputs, dict(extra or {}), precision)


@runtime_checkable
class Context(Protocol):
    """One single-threaded execution context (an infer request, a TensorRT context)."""

    def infer(self, feeds: Mapping[str, np.ndarray[Any, Any]]) -> Sequence[np.ndarray[Any, Any]]:
        """Run one request; same rules as :meth:`Executable.infer`."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Executable(Protocol):
    """A model loaded on a device, ready to run."""

    @property
    def inputs(self) -> Sequence[TensorSpec]:
        """The inputs as the engine reports them, in the model's declared order."""
        ...

    @property
    def outputs(self) -> Sequence[TensorSpec]:
        """The outputs as the engine reports them, in the model's declared order."""
        ...

    def infer(self, feeds: Mapping[str, np.ndarray[Any, Any]]) -> Sequence[np.ndarray[Any, Any]]:
        """Run one request. Feeds and outputs follow the module rules; raise ``InferenceError``."""
        ...

    def close(self) -> None:
        """Release engine resources; idempotent; see the module rules on in-flight calls."""
        ...

    # Optional: ``engine_device: str``, the device the engine chose when asked for ``auto``
    # (OpenVINO AUTO → "CPU"); users see it as ``Model.device_label`` ("auto → CPU").


@runtime_checkable
class SupportsContexts(Protocol):
    """What an executable of a ``ThreadSafety.CONTEXTS`` backend adds: the core pools contexts
    and runs every request on one of them, never two requests on the same one at once."""

    def create_context(self) -> Context: ...


@runtime_checkable
class SupportsOpCheck(Protocol):
    """Optional: a backend that can tell, without compiling, which nodes it cannot run.

    ``unirun inspect`` asks every backend that has this method; for the others it shows
    "unknown". Answer from the engine's own operator/kernel registry, for ``device`` (one of
    ``devices()``, or its kind alone), taking the model's opset imports and, where known, the
    element types into account. Return ``(node_name, op_type)`` pairs, in graph order, for the
    nodes the engine would refuse; an empty list means "no problem known", not a guarantee that
    ``compile`` succeeds; ``None`` means "cannot tell for this device". Must be cheap (no
    compile) and must not raise for a readable model.
    """

    def unsupported_ops(
        self, model: OnnxModel, device: Device
    ) -> Sequence[tuple[str, str]] | None: ...


@runtime_checkable
class Backend(Protocol):
    """An inference engine, as the core sees it."""

    #: Short lowercase name users type: ``"onnxruntime"``, ``"openvino"``.
    name: str
    #: The contract version the plugin implements; must equal the core's :data:`API_VERSION`.
    api_version: int
    capabilities: Capabilities
    #: The pydantic model of the plugin's own options (frozen, ``extra="forbid"``), or None.
    options_model: type[BaseModel] | None

    def probe(self) -> Probe:
        """Check the engine can be imported and used here. Never raises."""
        ...

    def devices(self) -> Sequence[DeviceInfo]:
        """Devices usable now, best first; concrete (``cuda:0``, not ``cuda``)."""
        ...

    def compile(self, model: OnnxModel, target: Target) -> Artifact:
        """Build ``model`` for ``target.device``; write payload files into ``target.directory``
        and return ``target.finish(...)``. Must not keep state between calls."""
        ...

    def load(self, artifact: Artifact, device: Device, cache_dir: Path | None = None) -> Executable:
        """Load a verified artifact (checksums and manifest already checked by the core) on
        ``device`` (one of ``devices()``). Raise ``ArtifactError`` if it cannot be loaded here.

        ``cache_dir`` is the same engine-cache directory ``Target.cache_dir`` gave at compile
        time, for a plugin that must rebuild at load (a blob that does not import here); None
        when the user turned caching off."""
        ...
