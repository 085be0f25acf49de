"""The Open Inference Protocol v2 (KServe/Triton REST) wire format, without any web framework.

Decodes an inference request (JSON tensors, or the binary tensor data extension) into numpy
arrays and encodes outputs back; every malformed request raises :class:`ProtocolError` with the
HTTP status and a message that names the tensor at fault.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..dtypes import DType
from ._tensors import (
    ProtocolError,
    datatype_of,
    dtype_of,
    tensor_from_binary,
    tensor_from_json,
    tensor_to_binary,
    tensor_to_json,
)

__all__ = [
    "HEADER_LENGTH",
    "DecodedRequest",
    "ProtocolError",
    "RequestedOutput",
    "compress",
    "datatype_of",
    "decode_body",
    "decode_request",
    "dtype_of",
    "encode_response",
    "metadata_shape",
]

#: The binary extension's header: the byte length of the JSON part of a request or response.
HEADER_LENGTH = "inference-header-content-length"


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool | None = None  # None: the request's binary_data_output default


@dataclass
class DecodedRequest:
    """One inference request: ``inputs`` maps names to arrays of the declared shape/datatype."""

    id: str | None
    inputs: dict[str, np.ndarray[Any, Any]]
    datatypes: dict[str, str]
    outputs: list[RequestedOutput] | None
    binary_default: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)


def decode_body(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo ``Content-Encoding: gzip|deflate``, refusing output over ``limit`` bytes."""
    if not encoding or encoding.lower() == "identity":
        return body
    kind = encoding.lower().strip()
    if kind not in ("gzip", "deflate"):
        raise ProtocolError(f"unsupported Content-Encoding {encoding!r}; use gzip or deflate", 415)
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if kind == "gzip" else zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise ProtocolError(f"the {kind} request body is corrupt: {exc}") from None
    if len(data) > limit:
        raise ProtocolError(f"the decompressed request is larger than the {limit}-byte limit", 413)
    return data


def decode_request(body: bytes, header_length: str | None) -> DecodedRequest:
    """Parse a request body; ``header_length`` is the Inference-Header-Content-Length value."""
    if header_length is None:
        head, raw = body, memoryview(b"")
    else:
        try:
            size = int(header_length)
        except ValueError:
            size = -1
        if not 0 <= size <= len(body):
            raise ProtocolError(
                f"Inference-Header-Content-Length {header_length!r} must be an integer between "
                f"0 and the body length {len(body)}"
            )
        head, raw = body[:size], memoryview(body)[size:]
    try:
        request = json.loads(head)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"the request is not valid JSON: {exc}") from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise ProtocolError('the request must be a JSON object with an "inputs" list')
    parameters = _parameters(request.get("parameters"), "the request")
    inputs: dict[str, np.ndarray[Any, Any]] = {}
    datatypes: dict[str, str] = {}
    offset = 0
    for item in request["inputs"]:
        name, datatype, shape, params = _tensor_header(item)
        if name in inputs:
            raise ProtocolError(f"input {name!r} appears twice in the request")
        length = params.get("binary_data_size")
        if length is not None:
            if not isinstance(length, int) or isinstance(length, bool) or length < 0:
                raise ProtocolError(f"input {name!r}: binary_data_size must be an integer >= 0")
            if offset + length > len(raw):
                raise ProtocolError(
                    f"input {name!r}: binary_data_size {length} runs past the end of the body "
                    f"({len(raw) - offset} bytes left)"
                )
            inputs[name] = tensor_from_binary(name, datatype, shape, raw[offset : offset + length])
            offset += length
        elif "data" in item:
            inputs[name] = tensor_from_json(name, datatype, shape, item["data"])
        else:
            raise ProtocolError(f'input {name!r} has neither "data" nor binary_data_size')
        datatypes[name] = datatype
    if offset != len(raw):
        raise ProtocolError(
            f"the body has {len(raw) - offset} bytes of binary data that no input claims"
        )
    outputs = None
    if request.get("outputs") is not None:
        if not isinstance(request["outputs"], list):
            raise ProtocolError('"outputs" must be a list')
        outputs = [_requested(o) for o in request["outputs"]]
    rid = request.get("id")
    return DecodedRequest(
        id=None if rid is None else str(rid),
        inputs=inputs,
        datatypes=datatypes,
        outputs=outputs,
        binary_default=bool(parameters.get("binary_data_output", False)),
        parameters=parameters,
    )


def encode_response(
    *,
    model_name: str,
    model_version: str | None,
    request_id: str | None,
    outputs: Sequence[tuple[str, np.ndarray[Any, Any], bool]],
) -> tuple[bytes, dict[str, str]]:
    """The response body and its headers; ``outputs`` holds (name, array, as_binary)."""
    entries: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for name, array, binary in outputs:
        datatype = datatype_of(DType.from_numpy(array.dtype))
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if binary:
            chunk = tensor_to_binary(array, datatype)
            entry["parameters"] = {"binary_data_size": len(chunk)}
            chunks.append(chunk)
        else:
            entry["data"] = tensor_to_json(name, array, datatype)
        entries.append(entry)
    response: dict[str, Any] = {"model_name": model_name, "outputs": entries}
    if model_version is not None:
        response["model_version"] = model_version
    if request_id is not None:
        response["id"] = request_id
    head = json.dumps(response, separators=(",", ":")).encode()
    if not chunks:
        return head, {"content-type": "application/json"}
    return head + b"".join(chunks), {
        "content-type": "application/octet-stream",
        HEADER_LENGTH: str(len(head)),
    }


def compress(body: bytes, accept_encoding: str | None) -> tuple[bytes, str | None]:
    """Compress a response as the client accepts (gzip preferred, then deflate)."""
    accepted = {t.split(";")[0].strip().lower() for t in (accept_encoding or "").split(",")}
    if "gzip" in accepted:
        return gzip.compress(body, compresslevel=1), "gzip"
    if "deflate" in accepted:
        return zlib.compress(body, 1), "deflate"
    return body, None


# -- tensors ----------------------------------------------------------------------------------


def _parameters(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProtocolError(f'"parameters" of {where} must be a JSON object')
    return value


def _tensor_header(item: Any) -> tuple[str, str, tuple[int, ...], dict[str, Any]]:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise ProtocolError('every input must be an object with a string "name"')
    name = item["name"]
    datatype = item.get("datatype")
    if not isinstance(datatype, str):
        raise ProtocolError(f'input {name!r} has no "datatype"')
    dtype_of(datatype, name)
    shape = item.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise ProtocolError(f'input {name!r}: "shape" must be a list of integers >= 0')
    return name, datatype, tuple(shape), _parameters(item.get("parameters"), f"input {name!r}")


def _requested(item: Any) -> RequestedOutput:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise ProtocolError('every requested output must be an object with a string "name"')
    params = _parameters(item.get("parameters"), f"output {item['name']!r}")
    if params.get("classification"):
        raise ProtocolError(
            f"output {item['name']!r}: the classification extension is not supported; ask "
            "for the raw output",
            501,
        )
    binary = params.get("binary_data")
    return RequestedOutput(item["name"], None if binary is None else bool(binary))


def metadata_shape(shape: Sequence[int | str] | None) -> list[int]:
    """A spec's shape as the protocol writes it: -1 for a variable dimension."""
    if shape is None:
        return [-1]
    return [d if isinstance(d, int) else -1 for d in shape]
