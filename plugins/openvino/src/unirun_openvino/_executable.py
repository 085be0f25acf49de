"""A compiled OpenVINO model and its infer requests (one per concurrently running call)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from unirun.errors import ModelClosedError
from unirun.options import Precision
from unirun.tensor import TensorSpec

from ._dtypes import OV_NAME, Decode, Encode, decoder, encoder
from ._engine import computed_precision, inference_type, ov
from ._errors import map_error
from ._ports import Binding

Array = np.ndarray[Any, Any]


class OpenVINOContext:
    """One ``InferRequest``. OpenVINO raises "Infer Request is busy" if a request is entered
    from two threads at once, so the core gives each running call its own context."""

    def __init__(
        self, compiled: Any, tensor: Any, feeds: Sequence[tuple[int, str]], results: Sequence[int]
    ) -> None:
        self._request: Any = compiled.create_infer_request()
        self._tensor = tensor
        self._feeds = tuple(feeds)
        self._outputs = tuple(results)

    def infer(self, feeds: Mapping[str, Array]) -> Sequence[Array]:
        request = self._request  # this reference keeps the request alive through close()
        if request is None:
            raise ModelClosedError("the OpenVINO model was closed")
        tensor, set_input = self._tensor, request.set_input_tensor
        try:
            for index, name in self._feeds:
                array = feeds[name]
                # Shares the caller's memory (no copy). ov.Tensor refuses read-only arrays in
                # shared mode; those are copied. The request keeps a raw pointer to the array
                # but no reference, and every call sets every input before running.
                set_input(index, tensor(array, shared_memory=array.flags.writeable))
            request.infer()
            get_output = request.get_output_tensor
            # Copy out: the request's output buffers are reused by its next run.
            return [get_output(index).data.copy() for index in self._outputs]
        except (RuntimeError, ValueError, TypeError) as exc:
            raise map_error(exc, "run", inputs=dict(self._feeds)) from exc

    def close(self) -> None:
        self._request = None


#: An input of a type numpy lacks: how its arrays become bits, and OpenVINO's element type.
Narrow = tuple[Encode, Any]


class NarrowContext(OpenVINOContext):
    """An infer request of a model with inputs or outputs of types numpy lacks (bfloat16,
    float8, int4…), which cross OpenVINO's API as raw bits with OpenVINO's element type. Only
    such models use it, so the others keep the plain path."""

    def __init__(
        self,
        compiled: Any,
        tensor: Any,
        feeds: Sequence[tuple[int, str, Narrow | None]],
        results: Sequence[tuple[int, Decode | None]],
    ) -> None:
        super().__init__(compiled, tensor, [(i, name) for i, name, _ in feeds], [])
        self._narrow_feeds = tuple(feeds)
        self._narrow_results = tuple(results)

    def infer(self, feeds: Mapping[str, Array]) -> Sequence[Array]:
        request = self._request
        if request is None:
            raise ModelClosedError("the OpenVINO model was closed")
        tensor, set_input = self._tensor, request.set_input_tensor
        held = []  # the raw bits (4-bit types: packed copies): the request points into them
        try:
            for index, name, narrow in self._narrow_feeds:
                array = feeds[name]
                if narrow is None:
                    set_input(index, tensor(array, shared_memory=array.flags.writeable))
                else:
                    bits = narrow[0](array)
                    held.append(bits)
                    set_input(index, tensor(bits, array.shape, narrow[1]))
            request.infer()
            get_output = request.get_output_tensor
            return [
                get_output(index).data.copy() if decode is None else decode(get_output(index))
                for index, decode in self._narrow_results
            ]
        except (RuntimeError, ValueError, TypeError) as exc:
            raise map_error(exc, "run", inputs=dict(self._feeds)) from exc


class OpenVINOExecutable:
    """A compiled model. ``loaded_from`` says whether it came from the artifact's exported blob
    (``"blob"``) or was recompiled from its IR (``"ir"``); ``precision`` is the precision
    OpenVINO reports this compiled model computes in (``"fp32"``, ``"bf16"``…; None if it does
    not say), ``inference_precision`` the same in OpenVINO's words (``"f32"``…);
    ``engine_device``, for AUTO, the devices OpenVINO chose (``"CPU"``), else None."""

    def __init__(self, compiled: Any, tensor: Any, binding: Binding, loaded_from: str) -> None:
        self._compiled: Any = compiled
        self._tensor = tensor
        self._feeds = binding.feeds
        self._results = binding.results
        self._narrow = _narrow_ports(binding)
        self.inputs: list[TensorSpec] = binding.inputs
        self.outputs: list[TensorSpec] = binding.outputs
        self.loaded_from = loaded_from
        self.inference_precision = inference_type(compiled)
        self.precision: Precision | None = computed_precision(compiled)
        self.engine_device: str | None = None

    def create_context(self) -> OpenVINOContext:
        compiled = self._compiled
        if compiled is None:
            raise ModelClosedError("the OpenVINO model was closed")
        try:
            if self._narrow is not None:
                return NarrowContext(compiled, self._tensor, *self._narrow)
            return OpenVINOContext(compiled, self._tensor, self._feeds, self._results)
        except RuntimeError as exc:
            raise map_error(exc, "run") from exc

    def close(self) -> None:
        # Contexts keep the compiled model alive until the core closes them.
        self._compiled = None


def _narrow_ports(
    binding: Binding,
) -> tuple[list[tuple[int, str, Narrow | None]], list[tuple[int, Decode | None]]] | None:
    """Each port's bridge for a model with types numpy lacks (decided once, at load), or None
    for a model without them."""
    kinds = {spec.name: spec.dtype for spec in binding.inputs}
    types = ov().Type
    feeds: list[tuple[int, str, Narrow | None]] = []
    for index, name in binding.feeds:
        dtype = kinds[name]
        narrow = (encoder(dtype), getattr(types, OV_NAME[dtype])) if dtype in OV_NAME else None
        feeds.append((index, name, narrow))
    results = [
        (index, decoder(spec.dtype) if spec.dtype in OV_NAME else None)
        for index, spec in zip(binding.results, binding.outputs, strict=True)
    ]
    if all(n is None for *_, n in feeds) and all(d is None for _, d in results):
        return None
    return feeds, results
