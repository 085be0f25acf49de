"""The device-tensor path of :class:`~unirun.model.Model`: feeds that live on the engine's GPU
and ``outputs="device"``, through the executable's (or context's) ``infer_device``.

Taken only when a feed is in device memory or the caller asked for device outputs, so the host
path stays as it is. Feeds are checked like host feeds (names, dtype, rank, dims, bounds) plus
where they live; outputs are checked against the contract (count, place, no feed's memory).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np

from ._admission import device_io_problem
from ._calls import map_engine_error
from .backend import OutputPlace, ThreadSafety
from .device_tensor import LEGACY_STREAM, DeviceTensor, from_object, where
from .errors import (
    InferenceError,
    InputError,
    OptionsError,
    PluginIncompatibleError,
)

if TYPE_CHECKING:
    from ._feeds import Slot
    from .model import Model

__all__ = ["OUTPUTS", "DeviceRunner", "Outputs"]

#: What ``Model.infer(outputs=...)`` accepts.
Outputs = Literal["numpy", "device"]
OUTPUTS: tuple[str, ...] = ("numpy", "device")


class DeviceRunner:
    """Runs a :class:`Model`'s requests through ``infer_device``; one per model, thread-safe."""

    def __init__(self, model: Model) -> None:
        self._model = model
        kinds = model.capabilities.device_io
        self.enabled = model.device.kind in kinds
        self._checked: set[type] = set()  # executable/context types whose signature fits

    def infer(self, inputs: Any, outputs: str) -> dict[str, Any]:
        model = self._model
        if outputs not in OUTPUTS:
            raise OptionsError(
                f"outputs={outputs!r} is not one of {', '.join(map(repr, OUTPUTS))}: 'numpy' "
                "returns numpy arrays, 'device' tensors left on the model's device"
            )
        if not self.enabled:
            raise OptionsError(
                f"outputs={outputs!r}: backend {model.backend!r} on {model.device} returns host "
                "memory only (device tensors in and out need a backend declaring device I/O "
                f"for {model.device.kind}, such as tensorrt or onnxruntime on cuda); use "
                "outputs='numpy'"
            )
        if model._closed:
            raise model._closed_error()
        feeds = self._feeds(inputs)
        place: OutputPlace = "device" if outputs == "device" else "host"
        try:
            results = self._run(feeds, place)
        except Exception as exc:
            error = map_engine_error(model.backend, model._mapper, "run", exc)
            if error is exc:
                raise
            raise error from exc
        return self._answers(feeds, results, place)

    # -- feeds -------------------------------------------------------------------------------

    def _feeds(self, inputs: Any) -> dict[str, DeviceTensor]:
        pairs = self._model._feeds.pairs(inputs)
        return {slot.name: self._feed(slot, value) for slot, value in pairs}

    def _feed(self, slot: Slot, value: Any) -> DeviceTensor:
        model = self._model
        if where(value) is None:
            return DeviceTensor.from_numpy(model._feeds.one(slot, value), slot.spec.dtype)
        tensor = from_object(value, slot.name, stream=LEGACY_STREAM)
        device, here = tensor.device, model.device
        if device.kind != here.kind or (device.index is not None and device.index != here.ordinal):
            raise InputError(
                f"input {slot.name!r} lives on {device}, but the model runs on {here}; move it "
                f"there first (torch: .to('{here.kind}:{here.ordinal}'))",
                slot.name,
            )
        if tensor.dtype is not slot.spec.dtype:
            raise InputError(
                f"input {slot.name!r} expects {slot.expected()}, got dtype {tensor.dtype}; convert "
                f"it on the device (torch: .to(torch.{slot.spec.dtype.value}))",
                slot.name,
            )
        problem = _shape_problem(slot, tensor.shape)
        if problem:
            raise InputError(
                f"input {slot.name!r} expects {slot.expected()}, got {problem}", slot.name
            )
        return tensor

    # -- running -----------------------------------------------------------------------------

    def _run(self, feeds: Mapping[str, DeviceTensor], place: OutputPlace) -> Sequence[DeviceTensor]:
        model = self._model
        executable: Any = model._executable
        safety = model.capabilities.thread_safety
        if safety is ThreadSafety.CONTEXTS:
            free = model._contexts
            try:
                ctx: Any = free.pop()
            except IndexError:
                ctx = executable.create_context()
            try:
                self._check(ctx)
                return cast(Sequence[DeviceTensor], ctx.infer_device(feeds, place))
            finally:
                free.append(ctx)
        self._check(executable)
        if safety is ThreadSafety.SERIAL:
            with model._serial:
                return cast(Sequence[DeviceTensor], executable.infer_device(feeds, place))
        return cast(Sequence[DeviceTensor], executable.infer_device(feeds, place))

    def _check(self, target: Any) -> None:
        if type(target) in self._checked:
            return
        problem = device_io_problem(target)
        if problem:
            raise PluginIncompatibleError(f"backend plugin {self._model.backend!r} {problem}")
        self._checked.add(type(target))

    def _answers(
        self, feeds: Mapping[str, DeviceTensor], results: Sequence[DeviceTensor], place: OutputPlace
    ) -> dict[str, Any]:
        model = self._model
        answers = model._answers
        if len(results) != len(answers):
            raise InferenceError(
                f"backend {model.backend!r} returned {len(results)} outputs for {len(answers)} "
                "declared ones; this is a plugin bug"
            )
        spans = [(t.pointer, t.pointer + t.nbytes) for t in feeds.values() if t.nbytes]
        host_feeds = [t.owner for t in feeds.values() if isinstance(t.owner, np.ndarray)]
        out: dict[str, Any] = {}
        for answer, tensor in zip(answers, results, strict=True):
            if not isinstance(tensor, DeviceTensor):
                raise InferenceError(
                    f"backend {model.backend!r} returned a {type(tensor).__name__} for output "
                    f"{answer.name!r} from infer_device, not a DeviceTensor; this is a plugin bug"
                )
            on_device = place == "device"
            if tensor.on_host == on_device or (
                on_device and tensor.device.kind != model.device.kind
            ):
                raise InferenceError(
                    f"backend {model.backend!r} returned output {answer.name!r} on "
                    f"{tensor.device} for outputs={place!r}; this is a plugin bug"
                )
            value: Any = tensor
            if on_device:
                lo, hi = tensor.pointer, tensor.pointer + tensor.nbytes
                if tensor.nbytes and any(a < hi and lo < b for a, b in spans):
                    raise InferenceError(
                        f"backend {model.backend!r} returned output {answer.name!r} in the memory "
                        "of an input; outputs must own their memory (this is a plugin bug)"
                    )
            else:
                value = tensor.numpy()
                if any(np.may_share_memory(value, feed) for feed in host_feeds):
                    value = value.copy()
            if tensor.shape not in answer.seen:
                model._check_answer(answer, cast(Any, tensor), cast(Any, feeds))
            out[answer.name] = value
        return out


def _shape_problem(slot: Slot, shape: tuple[int, ...]) -> str | None:
    if slot.static is not None:
        return None if shape == slot.static else f"shape {shape}"
    if slot.rank is None:
        return None
    if len(shape) != slot.rank:
        return f"rank {len(shape)} (shape {shape})"
    for axis, lo, hi in slot.checks:
        if not lo <= shape[axis] <= hi:
            return f"shape {shape} (dimension {axis})"
    if slot.choices is not None and shape not in slot.choices:
        return f"shape {shape}"
    return None
