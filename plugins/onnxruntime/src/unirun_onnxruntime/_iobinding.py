"""Device tensors in and out of a session through ONNX Runtime's I/O binding.

Inputs are bound by pointer (``bind_input(..., device_type, buffer_ptr=...)``): device memory
where it lives, host memory as ``cpu`` (ONNX Runtime copies it over). Outputs are bound to the
session's device and allocated by ONNX Runtime, so each call gets fresh ``OrtValue`` s that
own their memory, or to ``cpu`` for host outputs.

ONNX Runtime does not order its stream after the producer's: ``synchronize_inputs()`` waits for
the device (the CUDA provider synchronizes it) before a run that reads device feeds, and
``synchronize_outputs()`` after it, so the outputs are complete when :func:`run` returns.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from unirun.device import Device
from unirun.device_tensor import DeviceTensor
from unirun.dtypes import DType
from unirun.errors import UnsupportedModelError
from unirun.tensor import TensorSpec

from ._dtypes import from_ortvalue


def run(
    ort: Any,
    session: Any,
    feeds: Mapping[str, DeviceTensor],
    *,
    on_device: bool,
    device: Device,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
) -> list[DeviceTensor]:
    """One request on ``session`` (running on ``device``): device outputs when ``on_device``,
    else host outputs, each owning its memory."""
    strings = [s.name for s in (*inputs, *outputs) if s.dtype is DType.STRING]
    if strings:
        raise UnsupportedModelError(
            f"ONNX Runtime's I/O binding cannot carry string tensors ({', '.join(strings)}); "
            "run this model with host arrays and outputs='numpy'"
        )
    binding = session.io_binding()
    where = (device.kind, device.ordinal)
    ordered = False
    for spec in inputs:
        tensor = feeds[spec.name]
        device_type, device_id = ("cpu", 0) if tensor.on_host else where
        ordered = ordered or (not tensor.on_host and tensor.stream is not None)
        binding.bind_input(
            spec.name, device_type, device_id, spec.dtype.onnx, list(tensor.shape), tensor.pointer
        )
    if ordered:
        binding.synchronize_inputs()
    for spec in outputs:
        binding.bind_output(spec.name, *(where if on_device else ("cpu", 0)))
    session.run_with_iobinding(binding)
    binding.synchronize_outputs()
    values = binding.get_outputs()
    if not on_device:
        return [
            DeviceTensor.from_numpy(from_ortvalue(value, spec.dtype))
            for value, spec in zip(values, outputs, strict=True)
        ]
    spans = [
        (t.pointer, t.pointer + t.nbytes) for t in feeds.values() if not t.on_host and t.nbytes
    ]
    results = []
    for value, spec in zip(values, outputs, strict=True):
        tensor = _tensor(value, spec.dtype, device)
        lo, hi = tensor.pointer, tensor.pointer + tensor.nbytes
        if tensor.nbytes and any(a < hi and lo < b for a, b in spans):
            # A graph output that is a graph input: ONNX Runtime hands back the feed itself.
            tensor = _copy(ort, tensor, device)
        results.append(tensor)
    return results


def _tensor(value: Any, dtype: DType, device: Device) -> DeviceTensor:
    return DeviceTensor(int(value.data_ptr()), tuple(value.shape()), dtype, device, owner=value)


def _copy(ort: Any, tensor: DeviceTensor, device: Device) -> DeviceTensor:
    """A copy of ``tensor`` in new memory on ``device``, made by ONNX Runtime's Identity kernel
    (which never aliases a graph input) on the same device."""
    identity = _identity(ort, tensor.dtype, device)
    binding = identity.io_binding()
    where = (device.kind, device.ordinal)
    binding.bind_input("x", *where, tensor.dtype.onnx, list(tensor.shape), tensor.pointer)
    binding.bind_output("y", *where)
    identity.run_with_iobinding(binding)
    binding.synchronize_outputs()
    return _tensor(binding.get_outputs()[0], tensor.dtype, device)


@functools.cache
def _identity(ort: Any, dtype: DType, device: Device) -> Any:
    from onnx import helper

    x = helper.make_tensor_value_info("x", dtype.onnx, None)
    y = helper.make_tensor_value_info("y", dtype.onnx, None)
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "copy", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    provider: Any = "CPUExecutionProvider"
    if device.kind != "cpu":
        provider = ("CUDAExecutionProvider", {"device_id": device.ordinal})
    return ort.InferenceSession(model.SerializeToString(), providers=[provider])
