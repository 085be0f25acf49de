"""The backend: where unirun's vocabulary meets the engine. Replace the ``_engine()`` calls.

This skeleton is written against an imaginary SDK (``ENGINE_MODULE``) with three calls:
``compile(onnx_bytes, device=..., **options) -> bytes``, ``load(blob, device=...) -> program``
and ``program.run({name: array}) -> list[array]``. probe() reports it missing, so the plugin
declares itself unavailable until you wire in a real engine.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from unirun.backend import API_VERSION, Capabilities, DeviceInfo, Probe, Target, ThreadSafety
from unirun.device import Device
from unirun.errors import ArtifactError, ModelClosedError, UnsupportedModelError
from unirun.source import fix_input_shapes, graph_inputs, graph_outputs
from unirun.tensor import TensorSpec

from ._dtypes import TO_ENGINE
from ._errors import map_error
from .options import TemplateOptions

if TYPE_CHECKING:
    from unirun.artifact import Artifact
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
        dynamic_shapes="free",
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
                f"this is the unirun plugin template, with no engine behind it ({ENGINE_MODULE} "
                f"cannot be imported: {exc}); copy plugins/_template and wire in an engine",
            )
        return Probe(True, "", str(getattr(engine, "__version__", "unknown")))

    def devices(self) -> list[DeviceInfo]:
        return [DeviceInfo(Device("cpu"), "host CPU")]

    def compile(self, model: OnnxModel, target: Target) -> Artifact:
        engine = _engine()
        options = TemplateOptions.model_validate(target.options.backend_options)
        # for_engine(inline=True): the weights inline, read from the model's checked files
        proto = fix_input_shapes(model.for_engine(inline=True), target.options.shapes)
        inputs, outputs = graph_inputs(proto), graph_outputs(proto)
        _check_dtypes([*inputs, *outputs])
        try:
            blob = engine.compile(
                proto.SerializeToString(),
                device=target.device.kind,
                threads=target.options.threads,
                **options.model_dump(exclude_none=True),
            )
        except Exception as exc:
            raise map_error(exc, "compile") from exc
        (target.directory / PAYLOAD).write_bytes(blob)
        return target.finish(inputs, outputs)

    def load(
        self, artifact: Artifact, device: Device, cache_dir: Path | None = None
    ) -> TemplateExecutable:
        engine = _engine()
        try:
            program = engine.load(artifact.path(PAYLOAD).read_bytes(), device=device.kind)
        except Exception as exc:
            raise ArtifactError(f"the engine cannot load this artifact: {exc}") from exc
        return TemplateExecutable(program, artifact.inputs, artifact.outputs)


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
            raise ModelClosedError("this template model was closed")
        try:
            results = program.run(dict(feeds))
        except Exception as exc:
            raise map_error(exc, "run") from exc
        # Copy: the engine may reuse its output buffers on the next call.
        return [np.array(r, copy=True) for r in results]

    def close(self) -> None:
        self._program = None


def _check_dtypes(specs: Sequence[TensorSpec]) -> None:
    missing = [str(spec) for spec in specs if spec.dtype not in TO_ENGINE]
    if missing:
        raise UnsupportedModelError(
            f"the engine has no tensors of these types: {'; '.join(missing)}"
        )
