"""Tools for testing unirun backends: small ONNX models with known behaviour, and (in
:mod:`unirun.testing.conformance`) the conformance suite every plugin runs."""

from .models import (
    conv_net,
    embedding_model,
    matmul_symbolic,
    mlp,
    multi_io,
)

__all__ = ["conv_net", "embedding_model", "matmul_symbolic", "mlp", "multi_io"]
