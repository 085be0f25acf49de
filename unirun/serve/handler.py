"""One Open Inference Protocol request handler, shared by the one-process server and Ray Serve.

The handler knows nothing about HTTP frameworks: it takes a body and headers and returns a
:class:`Reply`. How a validated request reaches the model is the ``run`` hook: the one-process
server uses the model's own thread pool (:meth:`unirun.Model.infer_async`); Ray Serve replicas
pass a hook that batches requests with ``@serve.batch``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..api import load
from ..artifact import MANIFEST_NAME
from ..errors import InputError, OptionsError, UnirunError
from ..model import Model
from ..tensor import TensorSpec
from .protocol import (
    HEADER_LENGTH,
    DecodedRequest,
    ProtocolError,
    compress,
    datatype_of,
    decode_body,
    decode_request,
    encode_response,
    metadata_shape,
)

__all__ = ["DEFAULT_MAX_BODY", "OIPHandler", "Reply", "Runner", "ServedModel", "load_models"]

log = logging.getLogger("unirun.serve")

Array = np.ndarray[Any, Any]
#: 64 MiB: requests (after decompression) larger than this get HTTP 413.
DEFAULT_MAX_BODY = 64 << 20
VERSION = "1"
_SUFFIXES = (".unirun", ".onnx")


@dataclass
class ServedModel:
    """A loaded model under its protocol name, with its metadata worked out once."""

    name: str
    model: Model
    version: str = VERSION
    #: True when requests may be stacked along axis 0: every input and output starts with the
    #: same symbolic dimension, so the rows of a stacked result can be handed back.
    batchable: bool = field(init=False)
    metadata: dict[str, Any] = field(init=False)
    config: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        model = self.model
        self.batchable = _batchable(model.inputs, model.outputs)
        self.metadata = {
            "name": self.name,
            "versions": [self.version],
            "platform": "onnx_onnxv1",
            "inputs": [_tensor_metadata(s) for s in model.inputs],
            "outputs": [_tensor_metadata(s) for s in model.outputs],
            "parameters": {
                "backend": model.backend,
                "device": model.device_label,
                "precision": model.precision,
            },
        }
        self.config = {
            "name": self.name,
            "platform": "onnx_onnxv1",
            "backend": "unirun",
            "max_batch_size": 0,
            "input": [_tensor_config(s) for s in model.inputs],
            "output": [_tensor_config(s) for s in model.outputs],
            "parameters": {"unirun_backend": {"string_value": model.backend}},
        }


#: How a validated request reaches a model; returns every output of the model.
Runner = Callable[[ServedModel, dict[str, Array]], Awaitable[dict[str, Array]]]


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]


def error_reply(status: int, message: str) -> Reply:
    """The protocol's error body: ``{"error": message}``."""
    body = json.dumps({"error": message}).encode()
    return Reply(status, body, {"content-type": "application/json"})


async def run_in_pool(served: ServedModel, feeds: dict[str, Array]) -> dict[str, Array]:
    """The default runner: the model's thread pool, so the event loop keeps serving."""
    return await asyncio.wrap_future(served.model.infer_async(feeds))


class OIPHandler:
    """Answers Open Inference Protocol v2 requests for a set of loaded models.

    Thread-safe and framework-free: :meth:`infer` validates a request completely (names,
    datatypes, shapes against the model's inputs) before any model runs, so a bad request never
    costs inference time and, under Ray Serve batching, never fails anyone else's request.
    Every failure comes back as a :class:`Reply` with ``{"error": message}``: 400 for a bad
    request (the message names the tensor), 404 for an unknown model or version, 413 for a
    body over ``max_body_bytes``, 500 when the engine fails.
    """

    def __init__(
        self, models: Mapping[str, Model], *, max_body_bytes: int = DEFAULT_MAX_BODY
    ) -> None:
        if not models:
            raise OptionsError("a server needs at least one model")
        self.models = {name: ServedModel(name, model) for name, model in models.items()}
        self.max_body_bytes = max_body_bytes
        self.closed = False

    @classmethod
    def from_path(
        cls,
        path: str | os.PathLike[str],
        *,
        name: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY,
        **load_args: Any,
    ) -> OIPHandler:
        """Load an ``.onnx`` file, a saved artifact, or a directory of them (a model
        repository: one model per entry, named after it without ``.unirun``/``.onnx``)."""
        return cls(load_models(path, name=name, **load_args), max_body_bytes=max_body_bytes)

    def close(self) -> None:
        self.closed = True
        for served in self.models.values():
            served.model.close()

    # -- metadata -----------------------------------------------------------------------------

    def server_metadata(self) -> dict[str, Any]:
        return {"name": "unirun", "version": __version__, "extensions": ["binary_tensor_data"]}

    def ready(self) -> bool:
        return not self.closed

    def model(self, name: str, version: str | None = None) -> ServedModel:
        served = self.models.get(name)
        if served is None:
            raise ProtocolError(
                f"unknown model {name!r}; this server has {', '.join(map(repr, self.models))}",
                404,
            )
        if version not in (None, "", served.version):
            raise ProtocolError(
                f"model {name!r} has no version {version!r}; it has version {served.version}",
                404,
            )
        return served

    def repository_index(self) -> list[dict[str, str]]:
        return [
            {"name": s.name, "version": s.version, "state": "READY" if self.ready() else ""}
            for s in self.models.values()
        ]

    # -- inference ----------------------------------------------------------------------------

    async def infer(
        self,
        name: str,
        version: str | None,
        body: bytes,
        headers: Mapping[str, str],
        run: Runner | None = None,
    ) -> Reply:
        """Decode, validate, run and encode one request. ``headers`` must look names up
        case-insensitively (Starlette's do) or hold them in lower case."""
        try:
            served = self.model(name, version)
            data = decode_body(body, headers.get("content-encoding"), self.max_body_bytes)
            request = decode_request(data, headers.get(HEADER_LENGTH))
            feeds = self.check(served, request)
            wanted = self._wanted(served, request)
            outputs = await (run or run_in_pool)(served, feeds)
            content, extra = encode_response(
                model_name=served.name,
                model_version=served.version,
                request_id=request.id,
                outputs=[(n, outputs[n], binary) for n, binary in wanted],
            )
        except ProtocolError as exc:
            return error_reply(exc.status, exc.message)
        except InputError as exc:
            return error_reply(400, str(exc))
        except UnirunError as exc:
            log.warning("model %r failed: %s", name, exc)
            return error_reply(500, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # never a traceback to the client; the log keeps it
            log.exception("unexpected error while serving model %r", name)
            return error_reply(500, f"internal server error ({type(exc).__name__}); see the log")
        content, encoding = compress(content, headers.get("accept-encoding"))
        if encoding is not None:
            extra["content-encoding"] = encoding
        return Reply(200, content, extra)

    def check(self, served: ServedModel, request: DecodedRequest) -> dict[str, Array]:
        """The request's inputs, checked against the model's: ProtocolError 400 naming the
        tensor on an unknown or missing name, a wrong datatype or a shape the model refuses."""
        model = served.model
        specs = {s.name: s for s in model.inputs}
        for name in request.inputs:
            if name not in specs:
                raise ProtocolError(
                    f"unexpected inference input {name!r} for model {served.name!r}; its "
                    f"inputs are {_describe(model.inputs)}"
                )
        feeds: dict[str, Array] = {}
        for spec in model.inputs:
            array = request.inputs.get(spec.name)
            if array is None:
                raise ProtocolError(
                    f"missing inference input {spec.name!r} ({_describe([spec])}) for model "
                    f"{served.name!r}"
                )
            expected = datatype_of(spec.dtype)
            if request.datatypes[spec.name] != expected:
                raise ProtocolError(
                    f"unexpected datatype {request.datatypes[spec.name]} for inference input "
                    f"{spec.name!r}, expecting {expected}"
                )
            _check_shape(spec, array.shape, model, served.name)
            feeds[spec.name] = _strings(spec.name, array) if expected == "BYTES" else array
        return feeds

    def _wanted(self, served: ServedModel, request: DecodedRequest) -> list[tuple[str, bool]]:
        names = [s.name for s in served.model.outputs]
        if request.outputs is None:
            return [(n, request.binary_default) for n in names]
        wanted = []
        for out in request.outputs:
            if out.name not in names:
                raise ProtocolError(
                    f"unexpected inference output {out.name!r} for model {served.name!r}; its "
                    f"outputs are {', '.join(map(repr, names))}"
                )
            wanted.append((out.name, request.binary_default if out.binary is None else out.binary))
        return wanted


def load_models(
    path: str | os.PathLike[str], *, name: str | None = None, **load_args: Any
) -> dict[str, Model]:
    """Models by protocol name from an ``.onnx`` file, an artifact or a repository directory."""
    root = Path(path)
    if not root.exists():
        raise OptionsError(f"{root} does not exist; give an .onnx file, an artifact or a folder")
    if root.is_file() or (root / MANIFEST_NAME).is_file():
        return {name or _model_name(root): load(root, **load_args)}
    if name is not None:
        raise OptionsError(
            f"{root} is a model repository (one model per entry); a name applies to one model"
        )
    entries = sorted(
        p for p in root.iterdir() if p.suffix == ".onnx" or (p / MANIFEST_NAME).is_file()
    )
    if not entries:
        raise OptionsError(
            f"{root} holds no .onnx file and no artifact directory (with {MANIFEST_NAME})"
        )
    models: dict[str, Model] = {}
    try:
        for entry in entries:
            key = _model_name(entry)
            if key in models:
                raise OptionsError(f"two entries of {root} would both serve as model {key!r}")
            args = load_args if entry.is_file() else _artifact_args(load_args)
            models[key] = load(entry, **args)
    except BaseException:
        for model in models.values():
            model.close()
        raise
    return models


def _artifact_args(load_args: Mapping[str, Any]) -> dict[str, Any]:
    # A repository may mix .onnx files and artifacts: compile options only reach the former.
    return {k: v for k, v in load_args.items() if k in ("backend", "device", "cache")}


def _model_name(path: Path) -> str:
    name = path.name
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _tensor_metadata(spec: TensorSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "datatype": datatype_of(spec.dtype),
        "shape": metadata_shape(spec.shape),
    }


def _tensor_config(spec: TensorSpec) -> dict[str, Any]:
    datatype = datatype_of(spec.dtype)
    return {
        "name": spec.name,
        "data_type": "TYPE_STRING" if datatype == "BYTES" else f"TYPE_{datatype}",
        "dims": metadata_shape(spec.shape),
    }


def _describe(specs: list[TensorSpec]) -> str:
    return ", ".join(
        f"{s.name!r} ({datatype_of(s.dtype)} {metadata_shape(s.shape)})" for s in specs
    )


def _check_shape(spec: TensorSpec, shape: tuple[int, ...], model: Model, model_name: str) -> None:
    bounds = model.options.shapes.get(spec.name)
    expected = metadata_shape(spec.shape)
    ok = spec.shape is None or (
        len(shape) == len(spec.shape)
        and all(
            not isinstance(d, int) or d == got for d, got in zip(spec.shape, shape, strict=True)
        )
    )
    if ok and bounds is not None and not bounds.contains(shape):
        raise ProtocolError(
            f"unexpected shape {list(shape)} for inference input {spec.name!r} of model "
            f"{model_name!r}; the model was compiled for {bounds.describe()}"
        )
    if not ok:
        raise ProtocolError(
            f"unexpected shape {list(shape)} for inference input {spec.name!r} of model "
            f"{model_name!r}, expecting {expected} (-1: any size)"
        )


def _strings(name: str, array: Array) -> Array:
    """ONNX strings are UTF-8 text: BYTES elements become ``str`` for the engine."""
    out = np.empty(array.shape, dtype=object)
    flat = out.reshape(-1)
    for i, value in enumerate(array.reshape(-1)):
        try:
            flat[i] = value.decode() if isinstance(value, bytes) else str(value)
        except UnicodeDecodeError:
            raise ProtocolError(
                f"input {name!r}: element {i} is not UTF-8 text, which ONNX strings must be"
            ) from None
    return out


def _batchable(inputs: list[TensorSpec], outputs: list[TensorSpec]) -> bool:
    firsts = {s.shape[0] if s.shape else None for s in [*inputs, *outputs]}
    first = next(iter(firsts))
    return len(firsts) == 1 and isinstance(first, str) and first != "?"
