"""Small deterministic ONNX models that exercise what backends get wrong.

Every builder returns an ``onnx.ModelProto`` with fixed-seed weights, opset 17 by default, so
tests and examples can rebuild byte-identical files. They live in a few modules by kind (small
models for the conformance kit, deeper networks, int8 outliers, external weights, a streaming
model, values that are not tensors); import them from here.
"""

from __future__ import annotations

from ._deep import resnet_like, transformer_block
from ._external import rewrite_external_ones, save_external, scaled_by_weights
from ._onnx import OPSET
from ._onnx import _init as _init  # builders elsewhere in unirun.testing share these two
from ._onnx import _model as _model
from ._outliers import outlier_inputs, outlier_mlp
from ._small import conv_net, embedding_model, matmul_symbolic, mlp, multi_io, passthrough
from ._streaming import streaming_vad
from ._values import ML_OPSET, map_model, optional_model, sequence_model, zipmap_classifier

__all__ = [
    "ML_OPSET",
    "OPSET",
    "conv_net",
    "embedding_model",
    "map_model",
    "matmul_symbolic",
    "mlp",
    "multi_io",
    "optional_model",
    "outlier_inputs",
    "outlier_mlp",
    "passthrough",
    "resnet_like",
    "rewrite_external_ones",
    "save_external",
    "scaled_by_weights",
    "sequence_model",
    "streaming_vad",
    "transformer_block",
    "zipmap_classifier",
]
