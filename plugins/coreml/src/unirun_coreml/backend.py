"""The Core ML backend: ONNX translated to an ML Program (.mlpackage), run by Core ML on macOS.

Compiling works on every OS; running needs macOS 12+, so elsewhere ``probe()`` says so (with
``can_compile=True``) and loading raises ``BackendUnavailableError``.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np

from unirun.backend import (
    API_VERSION,
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
from unirun.device import Device
from unirun.dtypes import DType
from unirun.errors import (
    ArtifactError,
    BackendUnavailableError,
    CompileError,
    InputError,
    OptionsError,
    UnirunError,
)
from unirun.options import ShapeRange

from ._coremltools import coremltools, quiet
from ._iomap import TensorMapping
from .options import CoreMLOptions

if TYPE_CHECKING:
    from unirun.source import OnnxModel

Array = np.ndarray[Any, Any]
Predict = Callable[[dict[str, Array]], Mapping[str, Any]]

PACKAGE = "model.mlpackage"
#: unirun device kind -> coremltools ComputeUnit member (a load-time choice in Core ML).
COMPUTE_UNITS = {"cpu": "CPU_ONLY", "gpu": "CPU_AND_GPU", "ane": "CPU_AND_NE",
                 "npu": "CPU_AND_NE", "auto": "ALL"}  # fmt: skip
_KINDS = ("ane", "gpu", "cpu", "npu", "auto")
_INT32 = np.iinfo(np.int32)
_log = logging.getLogger("unirun_coreml")


class CoreMLBackend:
    """Translates ONNX to Core ML ML Programs; runs them through Core ML on macOS."""

    name = "coreml"
    api_version = API_VERSION
    options_model = CoreMLOptions
    capabilities = Capabilities(
        device_kinds=_KINDS,
        precisions=("fp32", "fp16", "int8"),
        dtypes=(DType.FLOAT32, DType.FLOAT16, DType.INT32, DType.INT64, DType.BOOL),
        dynamic_shapes=DynamicShapes.BOUNDED,
        thread_safety=ThreadSafety.SERIAL,
        artifact_format="mlpackage",
        # Below ONNX Runtime's CPU: the translator is young, so Core ML is chosen automatically
        # only when the user asks for the Neural Engine or an Apple GPU.
        priority={"ane": 45, "gpu": 40, "cpu": 20},
        # Core ML's weight quantization: int8 weights in the package, float math. The package
        # is the same for every compute unit.
        int8_forms=dict.fromkeys(_KINDS, (Int8Form.WEIGHTS,)),
    )

    def probe(self) -> Probe:
        try:
            version = str(coremltools().__version__)
        except Exception as exc:
            return Probe(False, f"coremltools cannot be imported ({exc}); install it: "
                                "pip install 'coremltools>=9,<10'")  # fmt: skip
        if platform.system() != "Darwin":
            return Probe(
                False,
                f"Core ML execution needs macOS 12 or newer (this is {platform.system()}); "
                "unirun.compile(..., backend='coreml') still builds .mlpackage artifacts here",
                version,
                can_compile=True,
            )
        release = platform.mac_ver()[0]
        if release and int(release.split(".")[0]) < 12:
            return Probe(False, f"ML Programs need macOS 12 or newer; this is macOS {release}",
                         version, can_compile=True)  # fmt: skip
        return Probe(True, "", version)

    def devices(self) -> list[DeviceInfo]:
        # Compute units are requests, not guarantees: Core ML falls back to the CPU per layer.
        return [
            DeviceInfo(Device("ane", 0), "Apple Neural Engine (Core ML CPU_AND_NE)"),
            DeviceInfo(Device("gpu", 0), "Apple GPU (Core ML CPU_AND_GPU)"),
            DeviceInfo(Device("cpu"), "CPU (Core ML CPU_ONLY)"),
        ]

    def unsupported_ops(
        self,
        model: OnnxModel,
        device: Device,
        shapes: Mapping[str, ShapeRange],
    ) -> list[tuple[str, str]]:
        """The nodes ``compile`` would refuse, found by the translator's own checks and
        lowering (nothing is converted). Without ``shapes``, dynamic dims stay symbolic."""
        from . import explain_unsupported

        refused = explain_unsupported(
            model.for_engine(inline=True),
            shapes={name: _shape(bounds) for name, bounds in (shapes or {}).items()},
            deployment_target=CoreMLOptions().deployment_target,
        )
        for op, reason in refused.items():
            _log.info("Core ML cannot take %s node %r: %s", op.op_type, op.node_name, reason)
        return [(op.node_name, op.op_type) for op in refused]

    # -- compile -------------------------------------------------------------------------------

    def compile(self, model: OnnxModel, request: CompileRequest) -> CompileResult:
        from ._translate import translate

        options = request.plugin_options
        assert isinstance(options, CoreMLOptions)  # validated by the core
        target = request.options
        proto = model.for_engine(inline=True)  # the translator needs the weights inline
        constants = {k: np.asarray(v) for k, v in options.constant_inputs.items()}
        int8 = target.precision == "int8"
        if int8:
            _check_int8_target(options.deployment_target)
        result = translate(
            proto,
            shapes={name: _shape(bounds) for name, bounds in target.shapes.items()},
            precision=options.int8_compute if int8 else target.precision,
            constant_inputs=constants,
            deployment_target=options.deployment_target,
        )
        if int8 and not result.int8_weights:
            raise CompileError(
                "no weight of this model stayed int8 in the Core ML program (only "
                "DequantizeLinear of int8/uint8 constants feeding Conv, ConvTranspose, Gemm or "
                "MatMul weights does); use precision='fp16' or 'fp32' for it"
            )
        try:
            result.save(request.directory / PACKAGE)
        except Exception as exc:
            raise CompileError(f"coremltools could not save the ML Program: {exc}") from exc
        inputs = [spec for spec in model.inputs if spec.name not in constants]
        return CompileResult(
            inputs,
            model.outputs,
            {
                "deployment_target": options.deployment_target,
                "io": {
                    "inputs": [asdict(m) for m in result.inputs],
                    "outputs": [asdict(m) for m in result.outputs],
                },
                **({"int8_weights": result.int8_weights} if result.int8_weights else {}),
            },
            # int8 weights, float math: say in which float
            precision=options.int8_compute if int8 else None,
        )

    # -- load ----------------------------------------------------------------------------------

    def load(self, request: LoadRequest) -> CoreMLExecutable:
        probe = self.probe()
        if not probe.available:
            raise BackendUnavailableError(f"cannot load a Core ML model here: {probe.reason}")
        ct = coremltools()
        units = getattr(ct.ComputeUnit, COMPUTE_UNITS[request.device.device.kind])
        try:
            with quiet():
                mlmodel = ct.models.MLModel(str(request.file(PACKAGE)), compute_units=units)
        except UnirunError:
            raise
        except Exception as exc:
            raise ArtifactError(f"Core ML cannot load the artifact's ML Program: {exc}") from exc
        return CoreMLExecutable(mlmodel.predict, request)

    def diagnose(self, device: Device | None) -> list[Finding]:
        """``unirun doctor -b coreml``: coremltools, and the macOS Core ML execution needs."""
        probe = self.probe()
        found = [
            Finding(
                "coremltools",
                probe.version is not None,
                probe.version or probe.reason,
                "" if probe.version else "pip install 'coremltools>=9,<10'",
            )
        ]
        system = platform.system()
        on_mac = system == "Darwin"
        found.append(
            Finding(
                "Core ML runtime",
                probe.available if on_mac else False,
                probe.reason or f"macOS {platform.mac_ver()[0]}",
                ""
                if on_mac
                else "run on macOS 12 or newer; unirun.compile builds .mlpackage artifacts here",
            )
        )
        return found


class CoreMLExecutable:
    """Feeds Core ML by its own names and types, and returns ONNX's: int64 travels as int32,
    bool outputs come back as int32, and a rank-0 input is fed as shape (1,)."""

    def __init__(self, predict: Predict, request: LoadRequest) -> None:
        self._predict: Predict | None = predict
        self.inputs = list(request.inputs)
        self.outputs = list(request.outputs)
        io = request.extra.get("io")
        if not isinstance(io, dict):
            raise ArtifactError("the manifest lacks the Core ML name map (extra.io)", field="extra")
        by_onnx = {m["onnx_name"]: TensorMapping(**{**m, "shape": _shape_of(m)})
                   for m in (*io["inputs"], *io["outputs"])}  # fmt: skip
        self._feeds = [
            (spec.name, by_onnx[spec.name].coreml_name, np.dtype(by_onnx[spec.name].coreml_dtype),
             spec.shape == ())
            for spec in self.inputs
        ]  # fmt: skip
        self._results = [
            (by_onnx[spec.name].coreml_name, spec.dtype.numpy, spec.shape == ())
            for spec in self.outputs
        ]

    def infer(self, feeds: Mapping[str, Array]) -> Sequence[Array]:
        predict = self._predict
        if predict is None:
            from unirun.errors import ModelClosedError

            raise ModelClosedError("the Core ML model was closed")
        coreml: dict[str, Array] = {}
        for onnx_name, coreml_name, dtype, scalar in self._feeds:
            array = feeds[onnx_name]
            if array.dtype != dtype:
                if (
                    array.dtype == np.int64
                    and array.size
                    and (array.max() > _INT32.max or array.min() < _INT32.min)
                ):
                    raise InputError(
                        f"input {onnx_name!r} holds values outside int32, which Core ML uses "
                        "for int64 tensors",
                        onnx_name,
                    )
                array = array.astype(dtype)
            coreml[coreml_name] = array.reshape(1) if scalar else array
        produced = predict(coreml)  # Core ML's exceptions: the core maps them (InferenceError)
        results = []
        for coreml_name, dtype, scalar in self._results:
            value = np.asarray(produced[coreml_name])
            if value.dtype != dtype:
                value = value.astype(dtype)
            results.append(value.reshape(()) if scalar else value)
        return results

    def close(self) -> None:
        self._predict = None


def _check_int8_target(deployment_target: str) -> None:
    ct = coremltools()
    if getattr(ct.target, deployment_target).value < ct.target.iOS16.value:
        raise OptionsError(
            f"int8 weights need Core ML's constexpr ops, which start with iOS16/macOS13; "
            f"deployment_target {deployment_target!r} would store them as floats: pass "
            "options={'deployment_target': 'iOS16'} or newer, or use precision='fp16'"
        )


def _shape(bounds: ShapeRange) -> Any:
    """unirun's shapes in the translator's terms: fixed, (min, opt, max), or a list of choices."""
    if bounds.choices is not None:
        return list(bounds.choices)
    if bounds.is_fixed:
        return bounds.min
    return (bounds.min, bounds.opt, bounds.max)


def _shape_of(item: Mapping[str, Any]) -> tuple[int | str, ...] | None:
    shape = item.get("shape")
    return None if shape is None else tuple(shape)
