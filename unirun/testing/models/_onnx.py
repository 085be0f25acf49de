"""What every builder shares: the default opset, initializers, and the model wrapper."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["OPSET"]


OPSET = 17


def _init(name: str, array: np.ndarray[Any, Any]) -> Any:
    from onnx import numpy_helper

    return numpy_helper.from_array(array, name)


def _model(graph: Any, opset: int = OPSET) -> Any:
    from onnx import helper

    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="unirun.testing"
    )
    model.ir_version = 8
    return model
