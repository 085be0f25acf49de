"""The emulator backend: an accelerator that does not exist, emulated on the host.

"Compiling" writes a program: the ONNX graph with fixed shapes written in and external weights
inlined (``program.onnx``), plus a header naming the instruction set it targets
(``program.json``). "Loading" checks the header and builds one ONNX reference evaluator per
execution context. The device kind ``emu`` and its identity (the instruction-set version) show
how a plugin brings hardware unirun does not know.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
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
    LoadRequest,
    Probe,
    Stage,
    ThreadSafety,
)
from unirun.device import Device
from unirun.errors import ArtifactError, InferenceError, ModelClosedError, UnirunError
from unirun.source import fix_input_shapes, graph_inputs, graph_outputs
from unirun.tensor import TensorSpec

from ._dtypes import TO_ENGINE
from ._errors import map_error
from .options import EmulatorOptions

if TYPE_CHECKING:
    from unirun.source import OnnxModel

Array = np.ndarray[Any, Any]

#: The instruction set this emulator implements; a program built for another one is refused.
ISA = "emu-isa-1"
PROGRAM = "program.onnx"
HEADER = "program.json"


@functools.cache
def _engine() -> Any:
    import onnx
    import onnx.reference

    return onnx


class EmulatorBackend:
    """An emulated accelerator: device kind ``emu``, one device, exact fp32 arithmetic."""

    name = "emulator"
    api_version = API_VERSION
    options_model = EmulatorOptions
    capabilities = Capabilities(
        device_kinds=("emu",),
        precisions=("fp32",),
        dtypes=tuple(TO_ENGINE),
        dynamic_shapes=DynamicShapes.FREE,
        thread_safety=ThreadSafety.CONTEXTS,
        artifact_format="emulator-program",
        pins_runtime_version=False,
        # The only engine for "emu" devices, so device="emu" picks it; low, so that
        # device="auto" (any device) still prefers the real engines.
        priority={"emu": 10},
        new_device_kinds={"emu": "an emulated accelerator (the unirun example plugin)"},
    )

    def probe(self) -> Probe:
        try:
            onnx = _engine()
        except Exception as exc:
            return Probe(False, f"onnx.reference cannot be imported ({exc}); pip install onnx")
        return Probe(True, "", f"{ISA} on onnx {onnx.__version__}")

    def devices(self) -> list[DeviceInfo]:
        return [DeviceInfo(Device("emu", 0), "emulated on the host CPU with numpy", ISA)]

    def compile(self, model: OnnxModel, request: CompileRequest) -> CompileResult:
        onnx = _engine()
        options = request.plugin_options
        assert isinstance(options, EmulatorOptions)  # validated by the core
        proto = onnx.load(str(model.path)) if model.external_files and model.path else model.proto
        proto = fix_input_shapes(proto, request.options.shapes)
        onnx.checker.check_model(proto)
        onnx.reference.ReferenceEvaluator(proto)  # refuse what it cannot run now, not at load
        onnx.save(proto, str(request.directory / PROGRAM))
        header = {"isa": ISA, "lanes": options.lanes or 8, "nodes": len(proto.graph.node)}
        (request.directory / HEADER).write_text(json.dumps(header), encoding="utf-8")
        return CompileResult(graph_inputs(proto), graph_outputs(proto), {"isa": ISA})

    def load(self, request: LoadRequest) -> EmulatorProgram:
        onnx = _engine()
        header = json.loads(request.file(HEADER).read_text(encoding="utf-8"))
        if header.get("isa") != ISA:
            raise ArtifactError(
                f"the program targets {header.get('isa')!r}; this emulator runs {ISA}: recompile",
                field="extra",
            )
        proto = onnx.load(str(request.file(PROGRAM)))
        options = request.plugin_options
        assert isinstance(options, EmulatorOptions)
        return EmulatorProgram(proto, request.inputs, request.outputs, options.check_nan)

    def map_error(self, exc: BaseException, stage: Stage) -> UnirunError | None:
        return map_error(exc, stage)

    def diagnose(self, device: Device | None) -> list[Finding]:
        probe = self.probe()
        return [
            Finding("onnx.reference", probe.available, probe.version or probe.reason,
                    "" if probe.available else "pip install onnx"),
            Finding("emulated device", None, f"emu:0 implements {ISA}"),
        ]  # fmt: skip

    def native_runner(self, model: bytes, device: Device) -> Callable[[Mapping[str, Array]], Any]:
        evaluator = _engine().reference.ReferenceEvaluator(model)
        return lambda feeds: evaluator.run(None, dict(feeds))


class EmulatorProgram:
    """A loaded program. ``ThreadSafety.CONTEXTS``: each concurrent call gets its own context."""

    def __init__(
        self,
        proto: Any,
        inputs: Sequence[TensorSpec],
        outputs: Sequence[TensorSpec],
        check_nan: bool,
    ) -> None:
        self._proto: Any = proto
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self._check_nan = check_nan

    def create_context(self) -> EmulatorContext:
        proto = self._proto
        if proto is None:
            raise ModelClosedError("this emulator program was closed")
        names = [spec.name for spec in self.outputs]
        evaluator = _engine().reference.ReferenceEvaluator(proto)
        return EmulatorContext(evaluator, names if self._check_nan else None)

    def close(self) -> None:
        self._proto = None


class EmulatorContext:
    """One evaluator; ``nan_check`` names the outputs to check for NaN, when asked to."""

    def __init__(self, evaluator: Any, nan_check: list[str] | None) -> None:
        self._evaluator: Any = evaluator
        self._nan_check = nan_check

    def infer(self, feeds: Mapping[str, Array]) -> Sequence[Array]:
        evaluator = self._evaluator
        if evaluator is None:
            raise ModelClosedError("this emulator context was closed")
        # np.array copies: the evaluator may hand back views of its inputs.
        results = [np.array(r) for r in evaluator.run(None, dict(feeds))]
        for name, value in zip(self._nan_check or (), results, strict=False):
            if value.dtype.kind == "f" and np.isnan(value).any():
                raise InferenceError(f"output {name!r} holds NaN (check_nan=True)")
        return results

    def close(self) -> None:
        self._evaluator = None
