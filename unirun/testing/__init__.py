"""Tools for testing unirun backends: small ONNX models with known behaviour,
:mod:`unirun.testing.conformance` (the pytest suite every plugin subclasses) and
:mod:`unirun.testing.onnx_backend` (the official ONNX node tests through any backend)."""

from ._support import load_request
from .models import (
    conv_net,
    embedding_model,
    matmul_symbolic,
    mlp,
    multi_io,
    outlier_inputs,
    outlier_mlp,
    passthrough,
    resnet_like,
    rewrite_external_ones,
    save_external,
    scaled_by_weights,
    transformer_block,
)
from .realistic import byte_classifier, pooled_cnn, streaming_vad

__all__ = [
    "byte_classifier",
    "conv_net",
    "embedding_model",
    "load_request",
    "matmul_symbolic",
    "mlp",
    "multi_io",
    "outlier_inputs",
    "outlier_mlp",
    "passthrough",
    "pooled_cnn",
    "resnet_like",
    "rewrite_external_ones",
    "save_external",
    "scaled_by_weights",
    "streaming_vad",
    "transformer_block",
]
