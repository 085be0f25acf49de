"""The official ONNX operator tests through unirun, beside the same tests through the engine's own
Python API, so that the two can be compared in one run.

The corpus is the node-test suite of the installed ``onnx`` package (``onnx.backend.test``: one
small model per operator variant, with inputs and expected outputs), generated in memory. Any
unirun backend can be exposed as an ``onnx.backend.base.Backend`` with :func:`onnx_backend`, so the
suite (or ONNX's own ``onnx.backend.test.runner.Runner``) can drive it. Inputs of types numpy lacks
(bfloat16, float8, int4) arrive as ``ml_dtypes`` arrays and go through :class:`unirun.DType` like
any other.

Command line (writes one JSON file with a result per test and a summary per run)::

    python -m unirun.testing.onnx_backend --backend onnxruntime --native
    python -m unirun.testing.onnx_backend --backend openvino --native -k "conv|gemm"
"""

from ._adapters import NativeBackend, native_backend, onnx_backend
from ._cli import main, report
from ._corpus import SAMPLE, NodeCase, node_cases
from ._running import Outcome, compare, run_case, run_suite, summarize

__all__ = [
    "SAMPLE",
    "NativeBackend",
    "NodeCase",
    "Outcome",
    "compare",
    "main",
    "native_backend",
    "node_cases",
    "onnx_backend",
    "report",
    "run_case",
    "run_suite",
    "summarize",
]
