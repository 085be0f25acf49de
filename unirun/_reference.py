"""A backend on ONNX's own reference evaluator: slow, but exact, and needs no engine.

It is what the core's tests and the conformance kit use for golden outputs, and a way to check
any backend (``unirun compare MODEL -b onnxruntime,reference``). It is never chosen by
``backend="auto"``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ._version import __version__
from .backend import (
    API_VERSION,
    Capabilities,
    CompileRequest,
    CompileResult,
    DeviceInfo,
    DynamicShapes,
    LoadRequest,
    Probe,
    Stage,
    ThreadSafety,
)
from .device import Device
from .dtypes import DType
from .errors import (
    InferenceError,
    InvalidModelError,
    ModelClosedError,
    UnirunError,
    UnsupportedModelError,
)
from .source import build_with_fixed_shapes, graph_inputs, graph_outputs
from .tensor import TensorSpec
from .values import OptionalType, TensorType, ValueKind

if TYPE_CHECKING:
    from .source import OnnxModel

PAYLOAD = "model.onnx"
log = logging.getLogger("unirun.reference")


class ReferenceBackend:
    name = "reference"
    api_version = API_VERSION
    plugin_version = __version__
    options_model = None
    capabilities = Capabilities(
        device_kinds=("cpu",),
        precisions=("fp32",),
        dtypes=tuple(DType),
        value_kinds=tuple(ValueKind),
        dynamic_shapes=DynamicShapes.FREE,
        thread_safety=ThreadSafety.SERIAL,
        artifact_format="onnx",
        priority={},  # never picked automatically
    )

    def probe(self) -> Probe:
        import onnx

        return Probe(True, "", onnx.__version__)

    def devices(self) -> list[DeviceInfo]:
        return [DeviceInfo(Device("cpu"), "onnx.reference (numpy)")]

    def compile(self, model: OnnxModel, request: CompileRequest) -> CompileResult:
        import onnx

        def build(proto: Any) -> Any:
            _evaluator(proto)  # fail at compile time, not at load
            return proto

        proto = build_with_fixed_shapes(
            model.for_engine(inline=True),
            request.options.shapes,
            build,
            engine="onnx.reference",
            logger=log,
        )
        onnx.save(proto, str(request.directory / PAYLOAD))
        return CompileResult(graph_inputs(proto), graph_outputs(proto))

    def load(self, request: LoadRequest) -> ReferenceExecutable:
        import onnx

        proto = onnx.load(str(request.file(PAYLOAD)))
        return ReferenceExecutable(_evaluator(proto), proto)

    def native_runner(
        self, model: bytes, device: Device
    ) -> Callable[[Mapping[str, np.ndarray[Any, Any]]], Sequence[np.ndarray[Any, Any]]]:
        """``onnx.reference.ReferenceEvaluator`` on its own, for the node-suite baseline."""
        from onnx.reference import ReferenceEvaluator

        evaluator = ReferenceEvaluator(model, new_ops=_new_ops())
        return lambda feeds: list(evaluator.run(None, dict(feeds)))

    def map_error(self, exc: BaseException, stage: Stage) -> UnirunError | None:
        if stage == "run":
            return InferenceError(f"onnx.reference failed: {type(exc).__name__}: {exc}")
        return None


def _evaluator(proto: Any) -> Any:
    import onnx
    from onnx.reference import ReferenceEvaluator

    try:
        # The evaluator itself finds an undefined value only when it runs the graph.
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise InvalidModelError(f"the model is not a valid ONNX graph: {exc}") from exc
    try:
        return ReferenceEvaluator(proto, new_ops=_new_ops())
    except NotImplementedError as exc:
        raise UnsupportedModelError(f"onnx.reference cannot run this model: {exc}") from exc
    except Exception as exc:
        raise InvalidModelError(f"onnx.reference rejected the model: {exc}") from exc


class ReferenceExecutable:
    def __init__(self, evaluator: Any, proto: Any) -> None:
        self._evaluator = evaluator
        self.inputs = graph_inputs(proto)
        self.outputs = graph_outputs(proto)

    def infer(self, feeds: Mapping[str, np.ndarray[Any, Any]]) -> Sequence[np.ndarray[Any, Any]]:
        evaluator = self._evaluator
        if evaluator is None:  # closed while this call waited for its turn
            raise ModelClosedError("the reference model was closed")
        results = evaluator.run(None, dict(feeds))
        return [_value(r, spec) for r, spec in zip(results, self.outputs, strict=True)]

    def close(self) -> None:
        self._evaluator = None


def _value(result: Any, spec: TensorSpec | None = None) -> Any:
    """A result as unirun returns it: numpy arrays, lists for sequences, dicts for maps, None
    for an absent optional. Where the evaluator strays from the declared type in a way that
    loses nothing, this restores it: numpy scalars for 0-d tensors, float64 where numpy
    promoted a float32 computation (DictVectorizer), and ``[x]`` for an optional tensor (what
    its ``Optional`` operator returns)."""
    kind = spec.kind if spec is not None else None
    if spec is not None and isinstance(kind, OptionalType) and isinstance(kind.element, TensorType):
        if isinstance(result, list) and len(result) == 1:
            result = result[0]
        present = TensorSpec.of(spec.name, kind.element)
        return None if result is None else _value(result, present)
    if result is None or isinstance(result, dict):
        return result
    if isinstance(result, list):
        return [_value(item) for item in result]
    array = np.asarray(result)
    if spec is not None and kind is None:
        declared = spec.dtype.numpy
        if array.dtype != declared and np.can_cast(array.dtype, declared, "same_kind"):
            array = array.astype(declared)
    return array


@functools.cache
def _new_ops() -> list[type[Any]]:
    """Operators onnx.reference lacks, implemented here from the ONNX operator specification:
    ``ai.onnx.ml.ZipMap``, which converted classifiers use for their probabilities."""
    from onnx.reference.ops.aionnxml._op_run_aionnxml import OpRunAiOnnxMl

    class ZipMap(OpRunAiOnnxMl):
        def _run(
            self, x: Any, classlabels_int64s: Any = None, classlabels_strings: Any = None
        ) -> tuple[list[dict[Any, float]]]:
            labels = classlabels_int64s if classlabels_int64s is not None else classlabels_strings
            if labels is None:
                raise ValueError("ZipMap needs classlabels_int64s or classlabels_strings")
            keys = [int(k) if isinstance(k, (int, np.integer)) else str(k) for k in labels]
            rows = np.asarray(x).reshape(-1, len(keys))
            return ([dict(zip(keys, map(float, row), strict=True)) for row in rows],)

    return [ZipMap]
