"""Weights in every place a model keeps constants, saved as external data, and rewriting
those external files."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._onnx import OPSET, _init, _model

__all__ = ["rewrite_external_ones", "save_external", "scaled_by_weights"]


def scaled_by_weights(where: str = "initializer", size: int = 4) -> Any:
    """``y = x * w`` with ``x`` float32[size] and ``w`` all ones, where ``w`` lives in one of the
    places a model keeps constants: ``"initializer"``, ``"constant"`` (a Constant node's value),
    ``"if_branch"`` (a Constant inside an If's then-branch; the else-branch gives sevens),
    ``"function"`` (a Constant inside a model-local function). Saved with
    ``onnx.save(..., save_as_external_data=True, convert_attribute=True, size_threshold=0)``,
    every such tensor moves to the external file; rewriting that file must change ``y``."""
    from onnx import TensorProto, helper

    def const(name: str, value: float) -> Any:
        return helper.make_node(
            "Constant", [], [name], value=_init(name, np.full(size, value, np.float32))
        )

    f32 = TensorProto.FLOAT
    x = helper.make_tensor_value_info("x", f32, [size])
    y = helper.make_tensor_value_info("y", f32, [size])
    inits, functions = [], []
    if where == "initializer":
        nodes = [helper.make_node("Mul", ["x", "w"], ["y"])]
        inits.append(_init("w", np.ones(size, np.float32)))
    elif where == "constant":
        nodes = [const("w", 1.0), helper.make_node("Mul", ["x", "w"], ["y"])]
    elif where == "if_branch":
        out = [helper.make_tensor_value_info("w", f32, [size])]
        then = helper.make_graph([const("w", 1.0)], "then", [], out)
        other = helper.make_graph([const("w", 7.0)], "else", [], out)
        nodes = [  # cond from an int attribute: no tensor of its own to move out
            helper.make_node("Constant", [], ["one"], value_int=1),
            helper.make_node("Cast", ["one"], ["cond"], to=TensorProto.BOOL),
            helper.make_node("If", ["cond"], ["w"], then_branch=then, else_branch=other),
            helper.make_node("Mul", ["x", "w"], ["y"]),
        ]
    elif where == "function":
        body = [const("w", 1.0), helper.make_node("Mul", ["fx", "w"], ["fy"])]
        functions.append(
            helper.make_function(
                "unirun.testing", "Scale", ["fx"], ["fy"], body, [helper.make_opsetid("", OPSET)]
            )
        )
        nodes = [helper.make_node("Scale", ["x"], ["y"], domain="unirun.testing")]
    else:
        raise ValueError(f"unknown place {where!r}")
    graph = helper.make_graph(nodes, f"scaled_{where}", [x], [y], inits)
    model = _model(graph)
    if functions:
        model.opset_import.append(helper.make_opsetid("unirun.testing", 1))
        model.functions.extend(functions)
    return model


def save_external(model: Any, path: Any, location: str = "w.bin") -> Any:
    """Save ``model`` to ``path`` with every tensor (node attributes too) in the external file
    ``location`` beside it; returns ``path`` as a ``pathlib.Path``."""
    import os
    from pathlib import Path

    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cwd = os.getcwd()
    os.chdir(path.parent)  # onnx.save looks for an existing ``location`` in the current directory
    try:
        onnx.save(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=location,
            size_threshold=0,
            convert_attribute=True,
        )
    finally:
        os.chdir(cwd)
    return path


def rewrite_external_ones(path: Any, value: float) -> None:
    """In the external files of the model at ``path``, overwrite every float32 tensor whose
    values are all ones with ``value`` (the weights of :func:`scaled_by_weights`)."""
    from pathlib import Path

    import onnx

    from unirun.source import external_tensors

    path = Path(path)
    proto = onnx.load(str(path), load_external_data=False)
    for tensor, _ in external_tensors(proto):
        if tensor.data_type != onnx.TensorProto.FLOAT:
            continue
        info = {e.key: e.value for e in tensor.external_data}
        file = path.parent / info["location"]
        offset, length = int(info.get("offset") or 0), int(info["length"])
        data = bytearray(file.read_bytes())
        old = np.frombuffer(bytes(data[offset : offset + length]), np.float32)
        if np.all(old == 1):
            data[offset : offset + length] = np.full(old.shape, value, np.float32).tobytes()
            file.write_bytes(bytes(data))
