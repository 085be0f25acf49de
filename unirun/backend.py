"""The contract between the unirun core and a backend plugin (API 2).

A plugin is a distribution that names a factory in the ``unirun.backends`` entry-point group;
the core calls it with no arguments and gets an object satisfying :class:`Backend`. The core
owns everything users touch (argument parsing, option validation, feed validation, external
weights, caching, manifests, thread pools, lifecycle, error wrapping); a plugin only translates
between plain values and its engine. Nothing crosses the boundary but the values defined here
and :class:`~unirun.source.OnnxModel`: a plugin never sees an artifact or a manifest.

Lifecycle::

    backend = Factory()             cheap: must not import the engine SDK
    backend.probe()                 may import the engine; never raises; called before anything
    backend.devices()               only if probe() said available (or can_compile)
    backend.compile(model, CompileRequest) -> CompileResult   payload files written into
                                    request.directory; the core writes and seals the manifest
    backend.load(LoadRequest) -> Executable                   any number of times
    executable.infer(feeds) ... executable.close()
    (CONTEXTS backends: executable.create_context().infer(feeds) instead of infer)

What the core guarantees before calling a plugin:

* **Checked declarations.** ``compile`` is only called for a device of one of
  ``Capabilities.device_kinds`` (a device from ``devices()``), a precision in
  ``Capabilities.precisions``, a model whose graph inputs/outputs all have a dtype in
  ``Capabilities.dtypes`` and a kind of value in ``Capabilities.value_kinds`` (tensors only,
  unless the plugin declares sequences, maps or optionals), and ``shapes`` that satisfy
  ``Capabilities.dynamic_shapes``. A plugin does not re-check these. ``devices()`` yielding a
  kind the plugin did not declare is refused.
* **Validated options.** ``request.plugin_options`` is an instance of ``options_model`` (or
  None when the backend has none), validated once by the core; ``load`` gets the same instance.
* **Resolved weights.** ``model`` (:class:`~unirun.source.OnnxModel`) is read once; its
  external data files are resolved inside the model's folder and hashed by the core.
* **Feeds.** The core calls ``infer`` only with a mapping holding every input by name, each a
  C-contiguous numpy array of exactly the declared dtype whose shape matches the declared rank,
  fixed dimensions and compiled bounds. The arrays belong to the caller: read them during the
  call, keep no reference after it returns, never write to them. An input that is not a tensor
  (only for a plugin declaring its kind) arrives checked against its
  :mod:`unirun.values` type: a sequence as a ``list`` of such arrays, a map as a ``dict`` (keys
  ``int`` or ``str``; tensor values as numpy scalars of the declared type), an absent optional
  as ``None``.

Rules every plugin follows:

* **Errors.** Raise the most specific :mod:`unirun.errors` type where the plugin knows better
  than the engine. Everything else an engine raises is passed to the backend's optional
  ``map_error(exc, stage)`` (see :class:`SupportsErrorMapping`), called by the core around every
  call into the plugin; it returns the unirun error to raise (the core chains the original and
  trims long engine messages) or None for the core's default for that stage (``CompileError``,
  ``ArtifactError``, ``InferenceError``). So a plugin has no ``try/except`` around engine calls.
* **Outputs.** ``infer`` returns one array per output in ``outputs`` order. The caller owns them:
  a later call must not overwrite memory it returned (copy out of reusable engine buffers). The
  core copies an output that aliases a feed. An output that is not a tensor is returned in the
  same Python form as inputs (``list``, ``dict``, ``None``; a map's scalar values may be plain
  Python numbers, as ONNX Runtime returns them).
* **Threads.** ``Capabilities.thread_safety`` states what the executable allows; the core
  serialises or pools accordingly (see :class:`ThreadSafety`). ``close()`` may be called while
  calls on other threads are still running: keep engine objects alive until they return
  (holding references in the running call is enough) and make a second ``close()`` a no-op.
* **Identity.** ``DeviceInfo.identity`` names the hardware compiled code depends on (CPU model
  and ISA for a plugin that compiles for the host CPU, GPU model + compute capability); it joins
  the cache key and the manifest, and the core refuses to load an artifact on a device of
  another identity. Leave it empty only when the payload is portable across devices of the kind.
* **No side channels.** Plugins read their configuration from the request only, never from
  environment variables, and write only inside ``request.directory`` (compile) and
  ``request.cache_dir``.

Device tensors (optional): a backend whose engine keeps tensors on a device lists those device
kinds in ``Capabilities.device_io`` (``("cuda",)``) and gives the executable — or, for
``CONTEXTS`` backends, each context — ``infer_device(feeds, outputs)``
(:class:`SupportsDeviceIO`). On a device of such a kind the core calls it instead of ``infer``
when a feed already lives on the device or the user asked for ``outputs="device"``; every
other call still goes through ``infer``. Elsewhere the core refuses device feeds with
``InputError`` and ``outputs="device"`` with ``OptionsError``, so a plugin without device I/O
never sees one.

Optional methods, found with ``isinstance`` against the ``Supports*`` protocols below:
``map_error``, ``unsupported_ops`` (``unirun inspect``), ``diagnose`` (``unirun doctor``),
``native_runner`` (the ONNX node-suite baseline) and, on executables or contexts,
``infer_device``. The core never requires them; it checks the signature of those a plugin has.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from .device import Device
from .dtypes import DType
from .options import CompileOptions, Precision, ShapeRange
from .tensor import TensorSpec
from .values import ValueKind

if TYPE_CHECKING:
    from pydantic import BaseModel

    from .device_tensor import DeviceTensor
    from .errors import UnirunError
    from .source import OnnxModel

__all__ = [
    "API_VERSION",
    "Backend",
    "Capabilities",
    "CompileRequest",
    "CompileResult",
    "Context",
    "DeviceInfo",
    "DynamicShapes",
    "Executable",
    "Finding",
    "Int8Form",
    "LoadRequest",
    "OutputPlace",
    "Probe",
    "Stage",
    "SupportsContexts",
    "SupportsDeviceIO",
    "SupportsDiagnosis",
    "SupportsErrorMapping",
    "SupportsNativeRunner",
    "SupportsOpCheck",
    "ThreadSafety",
    "ValueKind",
]

#: The contract version this core speaks. A plugin declares the version it was written for;
#: the core refuses (with the reason and the upgrade command) a plugin declaring another one.
API_VERSION = 2

Array = np.ndarray[Any, Any]
#: Where an engine exception was raised, as passed to ``map_error``.
Stage = Literal["compile", "load", "run"]
#: Where ``infer_device`` leaves its outputs: host memory, or the executable's device.
OutputPlace = Literal["host", "device"]


class ThreadSafety(str, Enum):
    """How an executable may be called from several threads."""

    #: ``infer`` must never overlap: the core serialises calls with a lock.
    SERIAL = "serial"
    #: The executable has ``create_context()`` returning independent :class:`Context` objects
    #: (infer requests, execution contexts) and no ``infer`` of its own; the core keeps a pool
    #: and gives each concurrent call its own context.
    CONTEXTS = "contexts"
    #: ``infer`` may be called from any number of threads at once.
    CONCURRENT = "concurrent"


class DynamicShapes(str, Enum):
    """What an engine needs to know at compile time about dimensions left symbolic."""

    #: Any size at run time; ``shapes`` is optional (an engine may still specialise on it).
    FREE = "free"
    #: Dynamic dims need ``shapes`` bounds (min, opt, max) at compile time.
    BOUNDED = "bounded"
    #: Every input shape must be fixed at compile time.
    STATIC = "static"


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
    """What a backend can do, as data: the core enforces it, the kit tests it, users see it."""

    device_kinds: tuple[str, ...]
    precisions: tuple[Precision, ...] = ("fp32",)
    dtypes: tuple[DType, ...] = (DType.FLOAT32,)
    dynamic_shapes: DynamicShapes = DynamicShapes.FREE
    thread_safety: ThreadSafety = ThreadSafety.SERIAL
    #: Short name of the payload format, e.g. ``"onnx"``, ``"openvino-blob"``, ``"mlpackage"``;
    #: recorded in the manifest and checked when an artifact is loaded.
    artifact_format: str = "onnx"
    #: True if an artifact loads only under the engine version that built it (the core checks).
    pins_runtime_version: bool = False
    #: Preference when the user leaves ``backend="auto"``: per device kind, higher wins;
    #: a kind that is absent is never chosen automatically. Scale: 0-100; the default CPU
    #: engine (ONNX Runtime) is 50, engines for one vendor's accelerators 55-70, a reference
    #: or experimental engine leaves the kind out.
    priority: Mapping[str, int] = field(default_factory=dict)
    #: For ``precision="int8"`` (which must then be in ``precisions``): per device kind, the
    #: :class:`Int8Form` s the engine runs well, best first. The core builds them in this order
    #: and keeps the first that is accurate and not slower than fp32 here. A kind that is
    #: absent has no int8.
    int8_forms: Mapping[str, tuple[Int8Form, ...]] = field(default_factory=dict)
    #: Device kinds this plugin adds to unirun's vocabulary, with a one-line description
    #: (``{"rocm": "an AMD GPU through ROCm"}``); list them in ``device_kinds`` too. Kinds in
    #: ``gpu_kinds`` also satisfy a request for ``"gpu"``.
    new_device_kinds: Mapping[str, str] = field(default_factory=dict)
    gpu_kinds: tuple[str, ...] = ()
    #: Device kinds (of ``device_kinds``) on which executables take and return tensors in
    #: device memory through ``infer_device`` (:class:`SupportsDeviceIO`). unirun exchanges
    #: device tensors on ``"cuda"``; empty: host memory only.
    device_io: tuple[str, ...] = ()
    #: The kinds of value (:class:`ValueKind`) the engine takes and returns at a graph's edges;
    #: tensors only by default. A model with an input or output made of another kind (a
    #: converted classifier's ``seq(map(int64, float32))`` is a sequence and a map) is refused
    #: with ``UnsupportedModelError`` before ``compile``. See :mod:`unirun.values` for the
    #: Python form of each kind in feeds and outputs.
    value_kinds: tuple[ValueKind, ...] = (ValueKind.TENSOR,)

    def __post_init__(self) -> None:
        # Accept the enum's string values ("bounded"), as plugins written from the docs do.
        for name, kind in (("dynamic_shapes", DynamicShapes), ("thread_safety", ThreadSafety)):
            value = getattr(self, name)
            if not isinstance(value, kind):
                try:
                    object.__setattr__(self, name, kind(value))
                except ValueError:
                    allowed = ", ".join(repr(m.value) for m in kind)
                    raise ValueError(
                        f"Capabilities.{name} must be one of {allowed}, not {value!r}"
                    ) from None
        try:
            kinds = tuple(ValueKind(k) for k in self.value_kinds)
        except ValueError:
            allowed = ", ".join(repr(k.value) for k in ValueKind)
            raise ValueError(
                f"Capabilities.value_kinds holds only {allowed}, not {self.value_kinds!r}"
            ) from None
        if ValueKind.TENSOR not in kinds:
            raise ValueError("Capabilities.value_kinds must include 'tensor'")
        object.__setattr__(self, "value_kinds", kinds)


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
    model and compute capability, a CPU model and its instruction sets); it joins the cache key
    and the artifact manifest, and an artifact never loads on a device of another identity.
    Empty means "compiled code is portable across devices of this kind".
    """

    device: Device
    description: str = ""
    identity: str = ""


@dataclass(frozen=True)
class CompileRequest:
    """Everything ``Backend.compile`` needs to know about the build it is asked for."""

    #: The device to build for: one of ``devices()`` (with its identity), or ``auto`` for a
    #: backend that lets its engine choose.
    device: DeviceInfo
    #: Engine-neutral options: precision, shapes, threads, optimisation level.
    options: CompileOptions
    #: The plugin's own options: an instance of ``Backend.options_model``, validated by the core.
    plugin_options: BaseModel | None
    #: An empty directory owned by this build: write the payload files here.
    directory: Path
    #: A directory the engine may use for its own persistent caches (shared across builds and
    #: loads: timing caches, kernel caches); None when the user turned caching off.
    cache_dir: Path | None


@dataclass(frozen=True)
class CompileResult:
    """What ``compile`` returns; the core seals it with the payload files into an artifact."""

    #: The inputs and outputs as the engine reports them, in the model's declared order.
    inputs: Sequence[TensorSpec]
    outputs: Sequence[TensorSpec]
    #: Plugin data kept in the manifest and handed back to ``load`` (JSON values only): name
    #: maps, the engine's own device string, anything ``load`` needs.
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: The precision the engine really computes in, asked of the compiled model, when it
    #: differs from the request (fp16 asked, fp32 run on a CPU without fp16 units); None means
    #: "as requested". The core warns about a substitution or, when strict, refuses it.
    precision: Precision | None = None
    #: True when the payload does not depend on the device's identity (a TensorRT plan built
    #: hardware-compatible): the core then records no identity, and ``load`` decides whether
    #: the device here can run it.
    portable: bool = False


@dataclass(frozen=True)
class LoadRequest:
    """Everything ``Backend.load`` needs: a verified artifact, as plain values."""

    #: The device to load on (one of ``devices()``, identity checked against the build's).
    device: DeviceInfo
    #: The options the artifact was compiled with, and the plugin's options (validated again).
    options: CompileOptions
    plugin_options: BaseModel | None
    #: What ``CompileResult.extra`` held.
    extra: Mapping[str, Any]
    #: The specs recorded at compile time.
    inputs: Sequence[TensorSpec]
    outputs: Sequence[TensorSpec]
    #: The precision the engine computed in when the artifact was built (``CompileResult.
    #: precision``, else the request): a plugin that rebuilds at load compares it with what the
    #: device grants now.
    precision: Precision
    #: The engine version that built the artifact (``Probe.version`` then).
    built_with: str | None
    #: The device the artifact was built for (``auto`` when the engine chose).
    built_for: Device
    #: Same as ``CompileRequest.cache_dir``: for a plugin that rebuilds at load (a blob that does
    #: not import here) and for engine caches; None when caching is off.
    cache_dir: Path | None
    #: Returns the path of a payload file (or folder) written at compile time, checksummed by
    #: the core; raises ``ArtifactError`` for a name the artifact does not hold.
    file: Callable[[str], Path] = field(repr=False)


@dataclass(frozen=True)
class Finding:
    """One line of ``unirun doctor``: what was checked, whether it is fine, and the fix.

    ``ok`` is None for a plain fact (a library's version); False fails the doctor run when the
    user asked for this backend or device, and warns otherwise."""

    check: str
    ok: bool | None
    detail: str = ""
    fix: str = ""


@runtime_checkable
class Context(Protocol):
    """One single-threaded execution context (an infer request, a TensorRT context)."""

    def infer(self, feeds: Mapping[str, Array]) -> Sequence[Array]:
        """Run one request; same rules as :meth:`Executable.infer`."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Executable(Protocol):
    """A model loaded on a device, ready to run.

    ``SERIAL`` and ``CONCURRENT`` backends implement ``infer``; ``CONTEXTS`` backends implement
    ``create_context`` (:class:`SupportsContexts`) instead. An executable may expose the device
    the engine chose for ``auto`` as a string attribute ``engine_device`` (OpenVINO AUTO →
    ``"CPU"``); users see it as ``Model.device_label``.
    """

    @property
    def inputs(self) -> Sequence[TensorSpec]:
        """The inputs as the engine reports them, in the model's declared order."""
        ...

    @property
    def outputs(self) -> Sequence[TensorSpec]:
        """The outputs as the engine reports them, in the model's declared order."""
        ...

    def close(self) -> None:
        """Release engine resources; idempotent; see the module rules on in-flight calls."""
        ...


@runtime_checkable
class SupportsInfer(Protocol):
    """What an executable of a ``SERIAL`` or ``CONCURRENT`` backend adds."""

    def infer(self, feeds: Mapping[str, Array]) -> Sequence[Array]:
        """Run one request. Feeds and outputs follow the module rules."""
        ...


@runtime_checkable
class SupportsContexts(Protocol):
    """What an executable of a ``CONTEXTS`` backend adds: the core pools contexts and runs
    every request on one of them, never two requests on the same one at once."""

    def create_context(self) -> Context: ...


@runtime_checkable
class SupportsDeviceIO(Protocol):
    """Optional, on an executable (``SERIAL``, ``CONCURRENT``) or a context (``CONTEXTS``) of a
    backend that declares ``Capabilities.device_io``: run one request on tensors in device
    memory, without a host round trip. Same threading rules as ``infer``; the core checks the
    signature when it loads the executable (a context: when it first uses it).

    ``feeds`` hold every input by name as a :class:`~unirun.device_tensor.DeviceTensor`, each
    checked by the core against the input's dtype, rank, fixed dims and compiled bounds, dense
    and C-contiguous, and either in host memory (``device`` is ``cpu``: the caller's numpy
    array, which the plugin copies in) or on this executable's device (``device`` is the
    executable's, or ``cuda`` without an index for a CUDA array interface producer, which does
    not say: assume the executable's GPU). A device feed's ``stream``, when not None, is a CUDA
    stream whose queued work produces it: order the engine's work after it (an event recorded
    on it and waited on) before reading the feed. Feeds belong to the caller: read them during
    the call only, keep no reference after it returns, never write to them.

    Return one ``DeviceTensor`` per output, in ``outputs`` order, complete when the call
    returns (``stream`` None): with ``outputs="host"`` in host memory (``DeviceTensor.
    from_numpy(array)`` of a new array), with ``outputs="device"`` on the executable's
    device. Each owns its memory through ``owner`` (an allocation freed when the owner is
    collected, an engine value such as an ``OrtValue``): never a buffer a later call reuses,
    never a feed's memory (the core checks and raises ``InferenceError`` for a plugin bug)."""

    def infer_device(
        self, feeds: Mapping[str, DeviceTensor], outputs: OutputPlace
    ) -> Sequence[DeviceTensor]: ...


@runtime_checkable
class SupportsErrorMapping(Protocol):
    """Optional: turn an engine exception into the most specific unirun error.

    Called by the core with any exception that is not already a ``UnirunError``, raised while
    the plugin compiled (``"compile"``), loaded (``"load"``) or ran (``"run"``). Return the
    error to raise (the core chains ``exc`` and trims the message), or None for the stage's
    default type. Must not raise."""

    def map_error(self, exc: BaseException, stage: Stage) -> UnirunError | None: ...


@runtime_checkable
class SupportsOpCheck(Protocol):
    """Optional: a backend that can tell, without compiling, which nodes it cannot run.

    ``unirun inspect`` asks every backend that has this method; for the others it shows
    "unknown". Answer from the engine's own operator/kernel registry, for ``device`` (one of
    ``devices()``, or its kind alone) and ``shapes`` (the ``shapes=`` the model would be
    compiled with, as :class:`~unirun.options.ShapeRange` s; may be empty), taking the model's
    opset imports and, where known, the element types into account. Return
    ``(node_name, op_type)`` pairs, in graph order, for the nodes the engine would refuse; an
    empty list means "no problem known", not a guarantee that ``compile`` succeeds; ``None``
    means "cannot tell for this device". Must be cheap (no compile) and must not raise for a
    readable model.
    """

    def unsupported_ops(
        self, model: OnnxModel, device: Device, shapes: Mapping[str, ShapeRange]
    ) -> Sequence[tuple[str, str]] | None: ...


@runtime_checkable
class SupportsDiagnosis(Protocol):
    """Optional: what ``unirun doctor -b NAME [-d DEVICE]`` prints for this backend: each check
    (driver, runtime libraries, device visible…) with the fix when it fails. Never raises."""

    def diagnose(self, device: Device | None) -> Sequence[Finding]: ...


@runtime_checkable
class SupportsNativeRunner(Protocol):
    """Optional: run a model with the engine directly, bypassing unirun, for the ONNX node-suite
    baseline (``unirun.testing.onnx_backend``): ``native_runner(model_bytes, device)`` returns a
    function from feeds to outputs in graph order. Raise anything for a model the engine
    refuses: the runner records it as a native failure."""

    def native_runner(
        self, model: bytes, device: Device
    ) -> Callable[[Mapping[str, Array]], Sequence[Array]]: ...


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
        """Devices usable now, best first; concrete (``cuda:0``, not ``cuda``), of declared
        kinds only."""
        ...

    def compile(self, model: OnnxModel, request: CompileRequest) -> CompileResult:
        """Build ``model`` for ``request.device``; write payload files into
        ``request.directory``. Must not keep state between calls."""
        ...

    def load(self, request: LoadRequest) -> Executable:
        """Load a verified artifact on ``request.device``. Raise ``ArtifactError`` if it cannot
        be loaded here (the core has already checked versions, device and identity)."""
        ...
