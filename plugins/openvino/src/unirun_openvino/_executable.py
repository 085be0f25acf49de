"""A compiled OpenVINO model and its infer requests (one per concurrently running call)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from unirun.errors import ModelClosedError
from unirun.options import Precision
from unirun.tensor import TensorSpec

from ._engine import computed_precision, inference_type
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
            return OpenVINOContext(compiled, self._tensor, self._feeds, self._results)
        except RuntimeError as exc:
            raise map_error(exc, "run") from exc

    def close(self) -> None:
        # Contexts keep the compiled model alive until the core closes them.
        self._compiled = None
