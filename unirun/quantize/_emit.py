"""Calibrate once, then write each int8 form: ONNX Runtime's quantization tools do the work.

Why ONNX Runtime's tools (``onnxruntime.quantization``) and not NNCF: they write standard ONNX
Q/DQ that ONNX Runtime, OpenVINO and TensorRT all consume, they keep the activation ranges in
one small JSON cache (``TensorsData``) from which every form is written again in seconds without
the data, and they come with the engine most users already have (NNCF would add its own stack
for one engine's IR).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..backend import Int8Form
from ..errors import CompileError, OptionsError
from ._calibration import Feeds

__all__ = ["Ranges", "applies", "calibrate", "emit", "require_tools", "tool_version"]

log = logging.getLogger("unirun.quantize")

INSTALL = "pip install 'unirun[quantize]'"
_MIN_ORT = (1, 32)
_WEIGHT_OPS = {"Conv": 1, "MatMul": 1, "Gemm": 1}
#: Weights smaller than this stay float in the weights-only form (Core ML's own threshold).
_MIN_WEIGHT = 2048


def require_tools() -> None:
    """OptionsError with the install command when ONNX Runtime's quantization is missing or
    older than the API used here (the range cache of ``quantize_static``)."""
    version = _ort_version()
    if version is None:
        raise OptionsError(
            "precision='int8' calibrates with ONNX Runtime's quantization tools, which are not "
            f"installed; install them: {INSTALL}"
        )
    if tuple(int(p) for p in version.split(".")[:2] if p.isdigit()) < _MIN_ORT:
        raise OptionsError(
            f"precision='int8' needs onnxruntime {'.'.join(map(str, _MIN_ORT))} or newer for its "
            f"quantization tools; {version} is installed: {INSTALL} -U"
        )


def _ort_version() -> str | None:
    for dist in ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return importlib.metadata.version(dist)
    return None


def tool_version() -> str:
    return f"onnxruntime.quantization {_ort_version() or 'unknown'}"


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The tools report through ``warnings`` and the root logger (``logging.warning``, which
    also configures logging when the application has not): silence both while they run."""
    root = logging.getLogger()
    guard = logging.NullHandler() if not root.handlers else None
    if guard is not None:
        root.addHandler(guard)  # keeps logging.warning() from calling basicConfig()
    root.addFilter(_drop_tool_records)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.removeFilter(_drop_tool_records)
        if guard is not None:
            root.removeHandler(guard)


def _drop_tool_records(record: logging.LogRecord) -> bool:
    return "onnxruntime" not in record.pathname


def _weighted_nodes(proto: Any, ops: Sequence[str]) -> list[Any]:
    inits = {t.name for t in proto.graph.initializer}
    return [
        n
        for n in proto.graph.node
        if n.op_type in ops and len(n.input) > _WEIGHT_OPS[n.op_type] and n.input[1] in inits
    ]


def applies(form: Int8Form, proto: Any) -> bool:
    """Whether ``form`` changes anything in this model."""
    if form is Int8Form.DYNAMIC:
        return bool(_weighted_nodes(proto, ("MatMul", "Gemm")))
    if form is Int8Form.WEIGHTS:
        sizes = {t.name: int(np.prod(t.dims)) for t in proto.graph.initializer}
        nodes = _weighted_nodes(proto, tuple(_WEIGHT_OPS))
        return any(sizes[n.input[1]] >= _MIN_WEIGHT for n in nodes)
    return True


class Ranges:
    """The one calibration: the pre-processed model and its activation ranges (ORT's
    ``TensorsData`` JSON), kept in ``directory``; every static form is written from it."""

    MODEL = "model.onnx"
    RANGES = "ranges.json"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.model = directory / self.MODEL
        self.ranges = directory / self.RANGES
        self.sha256 = hashlib.sha256(self.ranges.read_bytes()).hexdigest()


def preprocess(source: Any, out: Path) -> None:
    """ONNX Runtime's quantization pre-processing (shape inference, basic graph fusions); its
    symbolic shape inference fails on some exports, which then go without it."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with quiet():
        try:
            quant_pre_process(source, str(out))
        except Exception as exc:
            log.info("pre-processing with symbolic shapes failed (%s); retrying without", exc)
            quant_pre_process(source, str(out), skip_symbolic_shape=True)


def calibrate(source: Any, feeds: Sequence[Feeds], directory: Path) -> Ranges:
    """Min/max ranges of every float tensor over ``feeds``, cached in ``directory`` (written
    atomically; an existing complete one is reused)."""
    if (directory / Ranges.RANGES).is_file() and (directory / Ranges.MODEL).is_file():
        log.info("reusing the calibration ranges in %s", directory)
        return Ranges(directory)
    from onnxruntime.quantization.calibrate import (
        CalibrationMethod,
        create_calibrator,
        save_tensors_data,
    )

    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        preprocess(source, staging / Ranges.MODEL)
        with tempfile.TemporaryDirectory(prefix="unirun-calibrate-") as scratch, quiet():
            calibrator = create_calibrator(
                Path(staging / Ranges.MODEL),
                None,  # every float tensor, so that each form finds the ranges it needs
                augmented_model_path=str(Path(scratch) / "augmented.onnx"),
                calibrate_method=CalibrationMethod.MinMax,
                providers=["CPUExecutionProvider"],
            )
            calibrator.collect_data(_Reader(feeds))
            save_tensors_data(calibrator.compute_data(), staging / Ranges.RANGES)
            del calibrator
        try:
            os.replace(staging, directory)
        except OSError:  # another process finished the same calibration first
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Ranges(directory)


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over a list of feeds."""

    def __init__(self, feeds: Sequence[Feeds]) -> None:
        self._items = iter(feeds)

    def get_next(self) -> Feeds | None:
        return next(self._items, None)


def op_types(proto: Any) -> list[str] | None:
    """What the static forms quantize: everything in convolutional models (so activations stay
    int8 between layers), only MatMul/Gemm elsewhere (quantizing Softmax, LayerNorm or GELU
    loses accuracy and blocks the engines' own fusions in transformers)."""
    if any(n.op_type in ("Conv", "ConvTranspose") for n in proto.graph.node):
        return None
    return ["MatMul", "Gemm"]


def emit(
    form: Int8Form,
    proto: Any,
    *,
    ranges: Ranges | None,
    reduce_range: bool,
    source: Any,
    out: Path,
) -> dict[str, Any]:
    """Write ``form`` of the model to ``out``; return the parameters used (for the manifest).

    ``proto`` is the fp32 model; ``source`` what the tools read it from (a path keeps external
    weights); ``ranges`` is needed by the static forms."""
    try:
        with quiet():
            return _emit(form, proto, ranges, reduce_range, source, out)
    except (OptionsError, CompileError):
        raise
    except Exception as exc:
        raise CompileError(
            f"ONNX Runtime's quantization tools could not write the {form.value} int8 form: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _emit(
    form: Int8Form, proto: Any, ranges: Ranges | None, reduce_range: bool, source: Any, out: Path
) -> dict[str, Any]:
    if form is Int8Form.WEIGHTS:
        return _weights_only(proto, out)
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    if form is Int8Form.DYNAMIC:
        with tempfile.TemporaryDirectory(prefix="unirun-quantize-") as scratch:
            pre = Path(scratch) / "pre.onnx"
            preprocess(source, pre)
            quantize_dynamic(
                pre,
                out,
                op_types_to_quantize=["MatMul", "Gemm"],
                per_channel=False,
                reduce_range=reduce_range,
                weight_type=QuantType.QInt8,
            )
        return {
            "ops": ["MatMul", "Gemm"],
            "weights": "int8 symmetric per-tensor",
            "activations": "uint8, quantized per call",
            "reduce_range": reduce_range,
        }
    if ranges is None:
        raise CompileError("the static int8 forms need calibration ranges; this is a bug")
    symmetric = form is Int8Form.STATIC_SYMMETRIC
    ops = op_types(proto)
    quantize_static(
        ranges.model,
        out,
        None,
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=ops,
        per_channel=True,
        reduce_range=reduce_range and not symmetric,
        activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        calibration_cache_path=ranges.ranges,
        extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True},
    )
    return {
        "format": "QDQ",
        "ops": ops or "all",
        "activations": "int8 symmetric per-tensor" if symmetric else "uint8 asymmetric per-tensor",
        "weights": "int8 symmetric per-channel",
        "reduce_range": reduce_range and not symmetric,
    }


def _weights_only(proto: Any, out: Path) -> dict[str, Any]:
    """Int8 weights behind DequantizeLinear: symmetric, per output channel (per tensor before
    opset 13), for Conv/MatMul/Gemm weights of at least 2048 elements."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    inits = {t.name: t for t in graph.initializer}
    replaced: dict[str, str] = {}
    dequantize = []
    for node in _weighted_nodes(model, tuple(_WEIGHT_OPS)):
        name = node.input[1]
        tensor = inits[name]
        if name not in replaced:
            weights = numpy_helper.to_array(tensor)
            if tensor.data_type != onnx.TensorProto.FLOAT or weights.size < _MIN_WEIGHT:
                continue
            axis = _out_axis(node, weights.ndim)
            q, scale = _symmetric_int8(weights, axis if opset >= 13 else None)
            graph.initializer.extend(
                [
                    numpy_helper.from_array(q, f"{name}_int8"),
                    numpy_helper.from_array(scale, f"{name}_scale"),
                ]
            )
            node_dq = helper.make_node(
                "DequantizeLinear",
                [f"{name}_int8", f"{name}_scale"],
                [f"{name}_dequantized"],
                name=f"{name}_dequantize",
            )
            if opset >= 13:
                node_dq.attribute.append(helper.make_attribute("axis", axis))
            dequantize.append(node_dq)
            replaced[name] = f"{name}_dequantized"
        node.input[1] = replaced[name]
    kept = [t for t in graph.initializer if t.name not in replaced]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    for i, node in enumerate(dequantize):
        graph.node.insert(i, node)
    onnx.save(model, str(out))
    return {
        "weights": "int8 symmetric per-channel" if opset >= 13 else "int8 symmetric per-tensor",
        "activations": "float",
        "min_weight_elements": _MIN_WEIGHT,
        "quantized_weights": len(replaced),
    }


def _out_axis(node: Any, rank: int) -> int:
    if node.op_type == "Conv":
        return 0
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 0 if trans_b else 1
    return rank - 1  # MatMul: B is [..., K, N]


def _symmetric_int8(weights: np.ndarray[Any, Any], axis: int | None) -> tuple[Any, Any]:
    if axis is None:
        scale = np.array(np.abs(weights).max() / 127.0, np.float32)
        scale = np.where(scale > 0, scale, np.float32(1.0)).astype(np.float32)
        q = np.clip(np.rint(weights / scale), -127, 127).astype(np.int8)
        return q, scale
    others = tuple(i for i in range(weights.ndim) if i != axis)
    scale = (np.abs(weights).max(axis=others) / 127.0).astype(np.float32)
    scale[scale == 0] = 1.0
    shape = [1] * weights.ndim
    shape[axis] = -1
    q = np.clip(np.rint(weights / scale.reshape(shape)), -127, 127).astype(np.int8)
    return q, scale
