"""The translation environment: ONNX value name → numpy constant | MIL Var."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ._known import Known, from_constant
from ._mil import Value, is_const
from ._node import Node
from ._shapes import Dims

if TYPE_CHECKING:
    from ._quantized import Quantized


class Context:
    def __init__(self, target: Any, shapes: dict[str, Dims] | None = None) -> None:
        self.target = target  # a coremltools AvailableTarget
        self.env: dict[str, Value] = {}
        self.shapes: dict[str, Dims] = shapes or {}  # what ONNX infers (see _shapes)
        self.known: dict[str, Known] = {}  # run-time values known in part (see _known)
        self.sources: dict[Any, tuple[Value, int]] = {}  # MIL dim symbol → (var, axis)
        self.quantized: dict[str, Quantized] = {}  # int8 constants (see _quantized)
        self.weights: dict[tuple[Any, ...], Any] = {}  # their constexpr ops, one per form

    def expected(self, name: str) -> Dims | None:
        """The dims ONNX infers for a value (int, dim_param name or None each), if any."""
        return self.shapes.get(name)

    def input(self, node: Node, index: int) -> Value | None:
        names = node.inputs
        if index >= len(names) or not names[index]:
            return None
        try:
            return self.env[names[index]]
        except KeyError:
            raise node.error(f"input {names[index]!r} is produced by no earlier node") from None

    def required(self, node: Node, index: int) -> Value:
        value = self.input(node, index)
        if value is None:
            raise node.error(f"input #{index} is required")
        return value

    def const(self, node: Node, index: int, what: str = "") -> np.ndarray | None:
        """An input that must be known at conversion time (None when the input is absent)."""
        value = self.input(node, index)
        if value is None or is_const(value):
            return value
        label = what or f"input #{index}"
        raise node.error(
            f"{label} must be a constant (an initializer or computable from them); "
            "Core ML needs it at conversion time"
        )

    def known_input(self, node: Node, index: int) -> Known | None:
        """What is known of an input computed at run time (a shape vector, mostly)."""
        names = node.inputs
        if index >= len(names) or not names[index]:
            return None
        value = self.env.get(names[index])
        if value is not None and is_const(value):
            return from_constant(value)
        return self.known.get(names[index])

    def inputs(self, node: Node) -> list[Value | None]:
        return [self.input(node, i) for i in range(len(node.inputs))]
