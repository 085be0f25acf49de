"""A read-only view of an ONNX node with parsed attributes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .._errors import TranslationError


def _attribute_value(attr: onnx.AttributeProto) -> Any:
    if attr.type == onnx.AttributeProto.TENSOR:
        return numpy_helper.to_array(attr.t)
    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode("utf-8") for v in value]
    return value


@dataclass(frozen=True)
class Node:
    proto: onnx.NodeProto
    name: str
    opset: int
    attrs: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def wrap(cls, proto: onnx.NodeProto, index: int, opsets: Mapping[str, int]) -> Node:
        name = proto.name or f"{proto.op_type}_{index}"
        domain = "" if proto.domain == "ai.onnx" else proto.domain
        attrs = {a.name: _attribute_value(a) for a in proto.attribute}
        return cls(proto, name, opsets.get(domain, 0), attrs)

    @property
    def op_type(self) -> str:
        return self.proto.op_type

    @property
    def domain(self) -> str:
        return "" if self.proto.domain == "ai.onnx" else self.proto.domain

    @property
    def inputs(self) -> list[str]:
        return list(self.proto.input)

    @property
    def outputs(self) -> list[str]:
        return list(self.proto.output)

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)

    def ints(self, name: str, default: list[int] | None = None) -> list[int] | None:
        value = self.attrs.get(name)
        return default if value is None else [int(v) for v in np.asarray(value).reshape(-1)]

    def error(self, message: str) -> TranslationError:
        return TranslationError(message, self.name, self.op_type)
