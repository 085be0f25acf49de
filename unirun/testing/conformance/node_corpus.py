"""The ONNX operator corpus: core operators of the official ONNX node tests
(``onnx.backend.test``) pass through the backend."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import ClassVar

import pytest

from unirun.source import graph_inputs, graph_outputs

from ..onnx_backend import node_cases, onnx_backend, run_case
from .base import ConformanceBase, Engine, Params

__all__ = ["CORE_NODE_TESTS", "NodeCorpusTests"]

#: Node tests of the ONNX corpus that any engine running fp32 models is expected to pass.
CORE_NODE_TESTS = (
    "test_abs",
    "test_add_bcast",
    "test_relu",
    "test_sigmoid",
    "test_tanh",
    "test_softmax_axis_1",
    "test_matmul_2d",
    "test_gemm_default_no_bias",
    "test_conv_with_strides_padding",
    "test_maxpool_2d_default",
    "test_averagepool_2d_default",
    "test_batchnorm_example",
    "test_reshape_reduced_dims",
    "test_transpose_default",
    "test_concat_2d_axis_0",
    "test_gather_0",
    "test_reduce_mean_default_axes_keepdims_example",
    "test_where_example",
    "test_flatten_axis1",
    "test_cast_FLOAT_to_FLOAT16",
)


class NodeCorpusTests(ConformanceBase):
    """Does the backend pass the node tests any fp32 engine is expected to pass?"""

    _params: ClassVar[Mapping[str, Params]] = {"node_test": CORE_NODE_TESTS}

    def test_onnx_node(self, engine: Engine, node_test: str) -> None:
        """Core operators of the official ONNX node tests pass through the backend.

        Troubleshooting: run ``python -m unirun.testing.onnx_backend -b NAME --native -k
        NAME_OF_TEST -v`` to see the engine's own result next to unirun's; a test the engine
        fails natively too belongs in ``xfail`` with the engine's reason.
        """
        if "fp32" not in engine.capabilities.precisions:
            pytest.skip(f"backend {engine.name!r} does not compute in fp32")
        cases = node_cases(f"^{re.escape(node_test)}$")
        assert cases, f"the installed onnx has no node test {node_test}"
        for case in cases:
            used = {s.dtype for s in (*graph_inputs(case.model), *graph_outputs(case.model))}
            undeclared = sorted(str(d) for d in used - set(engine.capabilities.dtypes))
            if undeclared:
                pytest.skip(f"backend {engine.name!r} does not declare {', '.join(undeclared)}")
            outcome = run_case(onnx_backend(engine.name), case, str(engine.device))
            assert outcome.status == "pass", f"{outcome.stage}: {outcome.message}"
