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

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from ._contract_optional import (
    OutputPlace,
    Stage,
    SupportsDeviceIO,
    SupportsDiagnosis,
    SupportsErrorMapping,
    SupportsNativeRunner,
    SupportsOpCheck,
)
from ._contract_values import (
    Capabilities,
    CompileRequest,
    CompileResult,
    DeviceInfo,
    DynamicShapes,
    Finding,
    Int8Form,
    LoadRequest,
    Probe,
    ThreadSafety,
)
from .tensor import TensorSpec
from .values import ValueKind

if TYPE_CHECKING:
    from pydantic import BaseModel

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
