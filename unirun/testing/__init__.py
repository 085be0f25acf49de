"""Tools for testing unirun backends: small ONNX models with known behaviour,
:mod:`unirun.testing.conformance` (the pytest suite every plugin subclasses) and
:mod:`unirun.testing.onnx_backend` (the official ONNX node tests through any backend)."""

from .models import (
    conv_net,
    embedding_model,
    matmul_symbolic,
    mlp,
    multi_io,
    passthrough,
    rewrite_external_ones,
    save_external,
    scaled_by_weights,
    transformer_block,
)

__all__ = [
    "conv_net",
    "embedding_model",
    "matmul_symbolic",
    "mlp",
    "multi_io",
    "passthrough",
    "rewrite_external_ones",
    "save_external",
    "scaled_by_weights",
    "transformer_block",
]
