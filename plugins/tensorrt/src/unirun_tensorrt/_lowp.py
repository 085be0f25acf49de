"""fp32 ONNX to fp16 or bf16 ONNX, for strongly typed TensorRT (11), where precision is the
model's own tensor types.

Each node of the main graph computes in the low type where its operator schema allows it: a type
constraint that admits the low type gets it for all its float32 inputs and outputs; inputs with
a fixed ``tensor(float)`` slot (Resize's ``scales``) stay float32. These stay float32: nodes of
unknown types or custom domains, If/Loop/Scan and their bodies, Cast/Constant nodes, and
arithmetic on sizes and positions (anything computed from integers cast to float, and
constants, only), where fp16 would round integers above 2048. Casts are inserted where the two
meet, and TensorRT folds those of constants. Graph inputs and outputs keep their types: callers
feed and get what the fp32 model declared. Weights are converted once (fp16 clipped to its
finite range).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from unirun.errors import CompileError

FLOAT = 1
#: ONNX float element types (float, float16, double, bfloat16, float8…)
_FLOATS = frozenset({1, 10, 11, 16, 17, 18, 19, 20, 23, 24})
_LOW = {"fp16": (10, "tensor(float16)"), "bf16": (16, "tensor(bfloat16)")}
_FP16_MAX = float(np.finfo(np.float16).max)
#: Type boundaries and constants: kept as they are (TensorRT folds a Cast of a constant).
_KEEP = frozenset({"Cast", "CastLike", "Constant", "ConstantOfShape"})


def convert(proto: Any, precision: Literal["fp16", "bf16"], base_dir: Path | None = None) -> Any:
    """A copy of ``proto`` computing in ``precision``; ``base_dir`` resolves external weights
    (they come back inlined)."""
    import onnx
    from onnx import external_data_helper, shape_inference

    code, type_str = _LOW[precision]
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    try:
        inferred = shape_inference.infer_shapes(model, strict_mode=False)
    except Exception as exc:  # inference errors on a model TensorRT could still take
        raise CompileError(
            f"cannot convert the model to {precision} for TensorRT's strongly typed build: "
            f"ONNX type inference failed ({exc}); convert it yourself (ModelOpt AutoCast) and "
            "compile it with precision='fp32'"
        ) from exc
    if base_dir is not None:
        external_data_helper.load_external_data_for_model(model, str(base_dir))
    types = _types(inferred.graph)
    opsets = {entry.domain or "": entry.version for entry in model.opset_import}
    _Rewriter(model.graph, types, opsets, code, type_str, precision).run()
    return model


def _types(graph: Any) -> dict[str, int]:
    types: dict[str, int] = {}
    for value in (*graph.input, *graph.value_info, *graph.output):
        if value.type.WhichOneof("value") == "tensor_type":
            types[value.name] = value.type.tensor_type.elem_type
    for init in graph.initializer:
        types[init.name] = init.data_type
    return types


class _Rewriter:
    def __init__(
        self,
        graph: Any,
        types: dict[str, int],
        opsets: dict[str, int],
        code: int,
        type_str: str,
        precision: Literal["fp16", "bf16"],
    ) -> None:
        self.graph, self.types, self.opsets = graph, types, opsets
        self.code, self.type_str, self.precision = code, type_str, precision
        self.current = dict(types)  # value name -> element type after conversion
        self.initializers = {init.name: init for init in graph.initializer}
        self.twins: dict[tuple[str, int], str] = {}
        self.nodes: list[Any] = []
        self.sizes: set[str] = set()
        self.constants: set[str] = set(self.initializers)

    def run(self) -> None:
        import onnx

        for node in list(self.graph.node):
            plan = self._plan(node)
            if plan is None:
                self._keep(node)
            else:
                self._lower(node, plan)
        outputs = {o.name for o in self.graph.output}
        renames = {
            name: f"{name}__{self.precision}"
            for name in outputs
            if self.current.get(name) == self.code and self.types.get(name) == FLOAT
        }
        for node in self.nodes:
            _rename(node.input, renames)
            _rename(node.output, renames)
        for name, low in renames.items():
            self.nodes.append(onnx.helper.make_node("Cast", [low], [name], to=FLOAT))
        used = {name for node in self.nodes for name in _inputs_deep(node)}
        kept = [init for init in self.graph.initializer if init.name in used]
        del self.graph.initializer[:]
        self.graph.initializer.extend(kept)
        del self.graph.node[:]
        self.graph.node.extend(self.nodes)
        del self.graph.value_info[:]  # stale types; TensorRT infers its own

    # -- deciding --------------------------------------------------------------------------------

    def _plan(self, node: Any) -> tuple[set[int], set[int]] | None:
        """The (input, output) slots to lower, or None to keep the node in float32."""
        import onnx

        sizes = self._sizes(node)
        if sizes or node.op_type in _KEEP:
            return None
        if any(
            a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
            for a in node.attribute
        ):
            return None
        try:
            schema = onnx.defs.get_schema(
                node.op_type, self.opsets.get(node.domain or "", 1), node.domain or ""
            )
        except Exception:  # a custom domain onnx does not know
            return None
        allowed = {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints}
        ins = _slots(schema.inputs, len(node.input))
        outs = _slots(schema.outputs, len(node.output))
        if any(n and n not in self.types for n in (*node.input, *node.output)):
            return None
        params: set[str] = set()
        for slot, name in zip((*ins, *outs), (*node.input, *node.output), strict=True):
            if name and self.types[name] == FLOAT and slot in allowed:
                if self.type_str not in allowed[slot]:
                    return None
                params.add(slot)
        driving = {
            slot for slot, name in zip(ins, node.input, strict=True) if name and slot in params
        }
        for slot, name in zip(outs, node.output, strict=True):
            if name and self.types[name] == FLOAT and slot in params and slot not in driving:
                return None  # an output typed by an attribute (RandomNormal, EyeLike…)
        low_in = {i for i, slot in enumerate(ins) if node.input[i] and slot in params}
        low_out = {i for i, slot in enumerate(outs) if node.output[i] and slot in params}
        return (low_in, low_out) if low_in else None

    def _sizes(self, node: Any) -> bool:
        """True for arithmetic on sizes or positions: every float input is an integer cast to
        float, or derived from one and constants only. Its float outputs count as such too."""
        floats = [n for n in node.input if n and self.types.get(n) == FLOAT]
        if node.op_type == "Cast":
            derived = bool(node.input) and self.types.get(node.input[0], FLOAT) not in _FLOATS
        else:
            derived = (
                bool(floats)
                and all(n in self.sizes or n in self.constants for n in floats)
                and any(n in self.sizes for n in floats)
            )
        if node.op_type == "Constant":
            self.constants.update(node.output)
        if derived:
            self.sizes.update(n for n in node.output if self.types.get(n) == FLOAT)
        return derived

    # -- rewriting -------------------------------------------------------------------------------

    def _keep(self, node: Any) -> None:
        for index, name in enumerate(node.input):
            if name and self.current.get(name) == self.code:
                node.input[index] = self._twin(name, FLOAT)
        self._rename_captures(node)
        for name in node.output:
            if name in self.types:
                self.current[name] = self.types[name]
        self.nodes.append(node)

    def _lower(self, node: Any, plan: tuple[set[int], set[int]]) -> None:
        low_in, low_out = plan
        for index, name in enumerate(node.input):
            if not name:
                continue
            want = self.code if index in low_in else self.types.get(name)
            if self.current.get(name) != want and want in (FLOAT, self.code):
                node.input[index] = self._twin(name, want)
        for index, name in enumerate(node.output):
            self.current[name] = self.code if index in low_out else self.types.get(name, 0)
        self.nodes.append(node)

    def _twin(self, name: str, code: int) -> str:
        """``name`` as element type ``code``: a converted weight or a Cast, made once."""
        import onnx

        key = (name, code)
        if key not in self.twins:
            twin = f"{name}__{'fp32' if code == FLOAT else self.precision}"
            source = self.initializers.get(name)
            if source is not None and code == self.code and source.data_type == FLOAT:
                self.graph.initializer.append(self._weight(source, twin))
            else:
                self.nodes.append(onnx.helper.make_node("Cast", [name], [twin], to=code))
            self.twins[key] = twin
            self.current[twin] = code
        return self.twins[key]

    def _weight(self, tensor: Any, name: str) -> Any:
        from onnx import numpy_helper

        return numpy_helper.from_array(self._lower_array(numpy_helper.to_array(tensor)), name)

    def _lower_array(self, array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        if self.precision == "fp16":
            finite = np.isfinite(array)
            clipped = np.where(finite, np.clip(array, -_FP16_MAX, _FP16_MAX), array)
            return clipped.astype(np.float16)
        import ml_dtypes

        return array.astype(ml_dtypes.bfloat16)

    def _rename_captures(self, node: Any) -> None:
        """Subgraph bodies stay float32: outer values they read that were lowered are given
        to them through float32 twins."""
        import onnx

        for attr in node.attribute:
            bodies = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
            for body in bodies:
                for inner in _deep_nodes(body):
                    for index, name in enumerate(inner.input):
                        if name and self.current.get(name) == self.code:
                            inner.input[index] = self._twin(name, FLOAT)


def _slots(formal: Any, count: int) -> list[str]:
    """The type string of each actual input/output (the last formal one may be variadic)."""
    types = [p.type_str for p in formal]
    if not types:
        return [""] * count
    return [types[min(i, len(types) - 1)] for i in range(count)]


def _rename(names: Any, renames: dict[str, str]) -> None:
    for index, name in enumerate(names):
        if name in renames:
            names[index] = renames[name]


def _deep_nodes(graph: Any) -> Iterable[Any]:
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _deep_nodes(attr.g)
            for sub in attr.graphs:
                yield from _deep_nodes(sub)


def _inputs_deep(node: Any) -> Iterable[str]:
    yield from node.input
    for attr in node.attribute:
        for body in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
            for inner in _deep_nodes(body):
                yield from inner.input
