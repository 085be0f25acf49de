"""The backend: where unirun's vocabulary meets the engine. Replace the ``_engine()`` calls.

This skeleton is written against an imaginary SDK (``ENGINE_MODULE``) with three calls:
``compile(onnx_bytes, device=..., **options) -> bytes``, ``load(blob, device=...) -> program``
and ``program.run({name: array}) -> list[array]``. probe() reports it missing, so the plugin
declares itself unavailable until you wire in a real engine.

The core hands this module plain values (:class:`~unirun.backend.CompileRequest`,
:class:`~unirun.backend.LoadRequest`) and has already checked what ``capabilities`` declares:
dtypes, device kinds, precision, shapes. Engine exceptions need no ``try/except`` here: the core
passes them to :meth:`TemplateBackend.map_error`.
"""

from __future__ import annotations

import functools
import importlib
import platform
from collections.abc import Mapping, Sequence
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
from unirun.errors import ModelClosedError, UnirunError
from unirun.source import fix_input_shapes, graph_inputs, graph_outputs
from unirun.tensor import TensorSpec

from ._dtypes import TO_ENGINE
from ._errors import map_error
from .options import TemplateOptions

if TYPE_CHECKING:
    from unirun.source import OnnxModel

Array = np.ndarray[Any, Any]

#: The engine SDK's import name. Nothing imports it before probe().
ENGINE_MODULE = "unirun_template_engine"
PAYLOAD = "model.bin"


@functools.cache
def _engine() -> Any:
    return importlib.import_module(ENGINE_MODULE)


class TemplateBackend:
    """A backend that declares itself unavailable until a real engine is wired in."""

    name = "template"
    api_version = API_VERSION
    options_model = TemplateOptions
    capabilities = Capabilities(
        device_kinds=("cpu",),
        precisions=("fp32",),
        dtypes=tuple(TO_ENGINE),
        dynamic_shapes=DynamicShapes.FREE,
        thread_safety=ThreadSafety.SERIAL,
        artifact_format="template-blob",
        pins_runtime_version=True,
        priority={},  # never chosen by backend="auto"; give e.g. {"cpu": 30} once it works
    )

    def probe(self) -> Probe:
        try:
            engine = _engine()
        except Exception as exc:  # ImportError, or a native library that fails to load
            return Probe(
                False,
                f"no engine is wired into this plugin yet ({ENGINE_MODULE} cannot be imported: "
                f"{exc}); see the plugin authoring guide",
            )
        return Probe(True, "", str(getattr(engine, "__version__", "unknown")))

    def devices(self) -> list[DeviceInfo]:
        # identity: what compiled code depends on. An engine that compiles for the host CPU's
        # instruction set names it, so an artifact built on an AVX-512 machine never loads on
        # an AVX2 one; leave it "" only if the payload runs on any CPU.
        return [DeviceInfo(Device("cpu"), platform.processor() or "host CPU", platform.machine())]

    def compile(self, model: OnnxModel, request: CompileRequest) -> CompileResult:
        engine = _engine()
        options = request.plugin_options
        assert isinstance(options, TemplateOptions)  # validated by the core
        # for_engine(inline=True): the weights inline, read from the model's checked files
        proto = fix_input_shapes(model.for_engine(inline=True), request.options.shapes)
        blob = engine.compile(
            proto.SerializeToString(),
            device=request.device.device.kind,
            threads=request.options.threads,
            **options.model_dump(exclude_none=True),
        )
        (request.directory / PAYLOAD).write_bytes(blob)
        return CompileResult(graph_inputs(proto), graph_outputs(proto))

    def load(self, request: LoadRequest) -> TemplateExecutable:
        engine = _engine()
        program = engine.load(request.file(PAYLOAD).read_bytes(), device=request.device.device.kind)
        return TemplateExecutable(program, request.inputs, request.outputs)

    def map_error(self, exc: BaseException, stage: Stage) -> UnirunError | None:
        return map_error(exc, stage)

    def diagnose(self, device: Device | None) -> list[Finding]:
        """What ``unirun doctor`` checks for this backend beyond probe(): libraries, drivers…"""
        probe = self.probe()
        return [
            Finding(
                f"engine SDK {ENGINE_MODULE}",
                probe.available,
                probe.version or probe.reason,
                "" if probe.available else f"pip install {ENGINE_MODULE}",
            )
        ]


class TemplateExecutable:
    """One loaded program. ``ThreadSafety.SERIAL``: the core never overlaps ``infer`` calls."""

    def __init__(
        self, program: Any, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]
    ) -> None:
        self._program: Any = program
        self.inputs = list(inputs)
        self.outputs = list(outputs)

    def infer(self, feeds: Mapping[str, Array]) -> Sequence[Array]:
        program = self._program  # a concurrent close() must not pull it from under this call
        if program is None:
            raise ModelClosedError("this model was closed")
        results = program.run(dict(feeds))
        # Copy: the engine may reuse its output buffers on the next call.
        return [np.array(r, copy=True) for r in results]

    def close(self) -> None:
        self._program = None
