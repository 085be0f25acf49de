"""The optional methods of the plugin contract (:mod:`unirun.backend`, which re-exports them and
states the rules): the ``Supports*`` protocols the core finds with ``isinstance`` and whose
signatures it checks when a plugin has them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from ._contract_values import Finding
from .device import Device

if TYPE_CHECKING:
    from .device_tensor import DeviceTensor
    from .errors import UnirunError
    from .options import ShapeRange
    from .source import OnnxModel

__all__ = [
    "OutputPlace",
    "Stage",
    "SupportsDeviceIO",
    "SupportsDiagnosis",
    "SupportsErrorMapping",
    "SupportsNativeRunner",
    "SupportsOpCheck",
]

Array = np.ndarray[Any, Any]
#: Where an engine exception was raised, as passed to ``map_error``.
Stage = Literal["compile", "load", "run"]
#: Where ``infer_device`` leaves its outputs: host memory, or the executable's device.
OutputPlace = Literal["host", "device"]


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
