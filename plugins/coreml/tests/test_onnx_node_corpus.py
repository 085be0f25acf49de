"""A deterministic sample of the ONNX node-test corpus (onnx.backend.test), run through
translate → save → reload → evaluate. Every sampled case whose ops the op table accepts must
either match the corpus's expected outputs or be refused with one of our typed errors: never a
crash, never a wrong answer; and the op check (``unsupported_ops`` with the same shapes and
constants) must agree with what translation did. (The whole corpus is about 4 minutes here;
the README gives its tally.)
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np
import pytest

import unirun_coreml as uc

SAMPLE_EVERY = 10  # of the cases whose ops are all supported, sorted by name


def _array(value: Any) -> Any:
    import onnx
    from onnx import numpy_helper

    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    return np.asarray(value) if isinstance(value, np.generic) else value


@functools.cache
def _cases() -> list[Any]:
    from onnx.backend.test.case import node

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # some generators overflow on purpose
        collected = sorted(node.collect_testcases(), key=lambda c: c.name)
    from unirun_coreml._translate import find_unsupported  # the op table alone

    usable = [
        c
        for c in collected
        if c.data_sets
        and not find_unsupported(c.model)[0]
        and all(isinstance(_array(v), np.ndarray) for v in (*c.data_sets[0][0], *c.data_sets[0][1]))
        and "bf16" not in c.name  # we compute bfloat16 models in float32
    ]
    return usable[::SAMPLE_EVERY]


def _names() -> list[str]:
    try:
        return [c.name for c in _cases()]
    except ImportError:  # pragma: no cover - onnx without its test cases
        return []


def _translate(model: Any, shapes: dict[str, Any], constants: dict[str, np.ndarray]) -> Any:
    """translate(), asserting that the op check says the same for the same arguments."""
    refused = uc.unsupported_ops(model, constants, shapes=shapes)
    try:
        result = uc.translate(model, shapes=shapes, constant_inputs=constants)
    except uc.TranslationError as exc:
        error = exc
    else:
        assert refused == [], refused
        return result
    if error.node_name:  # a node's lowering failed: the op check must name that node
        assert error.node_name in [op.node_name for op in refused], (str(error), refused)
    raise error


@pytest.mark.parametrize("name", _names())
def test_node_case(harness: Any, name: str) -> None:
    case = next(c for c in _cases() if c.name == name)
    model = case.model
    inputs = [_array(v) for v in case.data_sets[0][0]]
    outputs = [_array(v) for v in case.data_sets[0][1]]
    initializers = {i.name for i in model.graph.initializer}
    names = [v.name for v in model.graph.input if v.name not in initializers]
    feeds = dict(zip(names, inputs, strict=True))
    shapes = {k: tuple(v.shape) for k, v in feeds.items() if v.ndim and 0 not in v.shape}
    constants: dict[str, np.ndarray] = {}
    try:
        try:
            result = _translate(model, shapes, constants)
        except uc.TranslationError as exc:
            if "must be a constant" not in str(exc):
                raise
            # The corpus feeds parameters (axes, pads, weights) as inputs; Core ML needs them
            # at conversion time, which is what constant_inputs is for.
            constants = dict(list(feeds.items())[1:])
            shapes = {k: v for k, v in shapes.items() if k not in constants}
            result = _translate(model, shapes, constants)
    except (uc.TranslationError, uc.InputShapeError, uc.UnsupportedOpsError):
        return  # refused, with a reason: allowed
    package = result.save(harness.tmp_path / "case.mlpackage")
    got = uc.evaluate(package, {k: v for k, v in feeds.items() if k not in constants})
    rtol, atol = max(case.rtol, 1e-4), max(case.atol, 1e-5)
    for info, want in zip(model.graph.output, outputs, strict=True):
        actual = got[info.name]
        assert actual.shape == want.shape, info.name
        if want.dtype.kind == "f":
            np.testing.assert_allclose(actual, want, rtol=rtol, atol=atol, equal_nan=True)
        else:
            np.testing.assert_array_equal(actual, want)
