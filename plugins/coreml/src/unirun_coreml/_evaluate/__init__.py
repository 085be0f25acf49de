"""Execute a saved ML Program with numpy, to check numerics where no Core ML runtime exists.

The saved ``.mlpackage`` is reloaded into a MIL Program with coremltools' milproto loader,
its symbolic dims are materialised to the feed shapes, and its ops run in order: our numpy
kernel where there is one (``_kernels``), else the op's own ``value_inference``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._coremltools import coremltools, quiet
from .._errors import EvaluationError
from .._iomap import METADATA_KEY, TensorMapping, loads
from . import _constexpr, _resample  # noqa: F401  (register their kernels)
from ._kernels import KERNELS

__all__ = ["Evaluator", "evaluate"]


class Evaluator:
    """Runs one saved ``.mlpackage``; feeds and outputs use ONNX names when the package
    carries unirun's name map, Core ML names otherwise."""

    def __init__(self, package: str | Path) -> None:
        ct = coremltools()
        with quiet():
            self._model = ct.models.MLModel(str(package), skip_model_load=True)
        self._spec = self._model.get_spec()
        if self._spec.WhichOneof("Type") != "mlProgram":
            raise EvaluationError(f"{package} is not an ML Program")
        meta = self._spec.description.metadata.userDefined
        if METADATA_KEY in meta:
            self.inputs, self.outputs = loads(meta[METADATA_KEY])
        else:
            self.inputs = tuple(_plain(i) for i in self._spec.description.input)
            self.outputs = tuple(_plain(o) for o in self._spec.description.output)

    def _load_program(self) -> Any:
        from coremltools.converters.mil.frontend.milproto.load import load

        with quiet():
            return load(
                self._spec,
                specification_version=self._spec.specificationVersion,
                file_weights_dir=self._model.weights_dir,
            )

    def __call__(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        program = self._load_program()  # a fresh program: evaluation writes values into it
        main = program.functions["main"]
        arrays: dict[str, np.ndarray] = {}
        for mapping in self.inputs:
            name = mapping.onnx_name if mapping.onnx_name in feeds else mapping.coreml_name
            if name not in feeds:
                raise EvaluationError(f"missing feed for input {mapping.onnx_name!r}")
            array = np.asarray(feeds[name]).astype(mapping.coreml_dtype)
            arrays[mapping.coreml_name] = array.reshape(1) if array.ndim == 0 else array
        function = _materialize(program, main, {k: v.shape for k, v in arrays.items()})
        for name, var in function.inputs.items():
            _set_value(var, arrays[name])
        with np.errstate(all="ignore"):  # inf and nan propagate as they would on the device
            for op in function.operations:
                _run(op)
        results = {}
        by_name = {m.coreml_name: m for m in self.outputs}
        for var in function.outputs:
            value = np.asarray(var.val)
            if var.name in by_name:
                mapping = by_name[var.name]
                results[mapping.onnx_name] = value.astype(mapping.onnx_dtype)
            else:
                results[var.name] = value
        return results


def evaluate(package: str | Path, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Run a saved ``.mlpackage`` once with numpy; see :class:`Evaluator`."""
    return Evaluator(package)(feeds)


def _plain(description: Any) -> TensorMapping:
    return TensorMapping(description.name, description.name, "float32", "float32", ())


def _materialize(program: Any, main: Any, shapes: dict[str, tuple[int, ...]]) -> Any:
    from coremltools.converters.mil.mil.types.symbolic import any_symbolic

    if not any(any_symbolic(var.shape) for var in main.inputs.values()):
        return main
    from coremltools.converters.mil.mil.passes.defs.symbol_transform import (
        materialize_symbolic_shape_program,
    )

    for op in main.operations:
        if op.op_type == "const" and isinstance(op.outputs[0].val, np.bool_):
            # The rebuild runs value_inference on constant sub-graphs; coremltools' reduce
            # ops pass a numpy bool as keepdims there, which numpy 2 rejects.
            op.outputs[0]._sym_val.val = bool(op.outputs[0].val)
    graph_pass = materialize_symbolic_shape_program()
    graph_pass.function_name_to_materialization_map = {
        "materialized": {name: tuple(int(d) for d in shape) for name, shape in shapes.items()}
    }
    with quiet():
        graph_pass.apply(program)
    return program.functions["materialized"]


def _run(op: Any) -> None:
    if op.op_type == "const":
        return
    if op.blocks:
        raise EvaluationError(f"control flow op {op.op_type!r} ({op.name}) is not supported")
    fn = KERNELS.get(op.op_type)
    try:
        result = fn(op) if fn is not None else op.value_inference()
    except NotImplementedError as exc:
        raise EvaluationError(
            f"no numpy implementation for MIL op {op.op_type!r} ({op.name}): {exc}"
        ) from exc
    values = result if isinstance(result, (tuple, list)) else (result,)
    if len(values) != len(op.outputs) or any(v is None for v in values):
        raise EvaluationError(f"MIL op {op.op_type!r} ({op.name}) produced no value")
    for var, value in zip(op.outputs, values, strict=True):
        _set_value(var, value)


def _set_value(var: Any, value: Any) -> None:
    from coremltools.converters.mil.mil import types
    from coremltools.converters.mil.mil.types.symbolic import is_symbolic

    dtype = types.nptype_from_builtin(var.dtype)
    array = np.asarray(value)
    if array.dtype.kind == "f" and np.dtype(dtype).kind in "iu":
        array = np.trunc(array)
    array = array.astype(dtype)
    # Dims that depend on values (a reshape to a runtime shape) stay symbolic: skip those.
    expected = tuple(d if is_symbolic(d) else int(d) for d in var.shape)
    if len(array.shape) != len(expected) or any(
        not is_symbolic(e) and e != a for a, e in zip(array.shape, expected, strict=True)
    ):
        raise EvaluationError(
            f"{var.op.op_type if var.op else 'input'} {var.name!r}: computed shape "
            f"{array.shape}, but the program declares {expected}"
        )
    holder = var.sym_type()
    holder.val = array if types.is_tensor(var.sym_type) else array.reshape(())[()]
    var._sym_val = holder
