"""The plain values of the plugin contract (:mod:`unirun.backend`, which re-exports them): what
a backend declares (:class:`Capabilities`) and reports (:class:`Probe`, :class:`DeviceInfo`,
:class:`Finding`), and what the core and a plugin hand each other to compile and load
(:class:`CompileRequest`, :class:`CompileResult`, :class:`LoadRequest`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .device import Device
from .dtypes import DType
from .options import CompileOptions, Precision
from .tensor import TensorSpec
from .values import ValueKind

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = [
    "Capabilities",
    "CompileRequest",
    "CompileResult",
    "DeviceInfo",
    "DynamicShapes",
    "Finding",
    "Int8Form",
    "LoadRequest",
    "Probe",
    "ThreadSafety",
]


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
