"""The node-test corpus of the installed ``onnx`` package, generated in memory."""

from __future__ import annotations

import functools
import re
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["SAMPLE", "NodeCase", "node_cases"]


#: Tests the pytest suites run instead of the whole corpus: common operators of every family,
#: plus the cases whose inputs or outputs numpy cannot hold without ``ml_dtypes``.
SAMPLE = re.compile(
    r"^test_("
    r"abs|add|add_bcast|relu|sigmoid|tanh|softmax_axis_1|gemm_default_no_bias|matmul_2d|"
    r"conv_with_strides_padding|maxpool_2d_default|averagepool_2d_default|"
    r"batchnorm_example|layer_normalization_2d_axis0|reshape_reduced_dims|transpose_default|"
    r"concat_2d_axis_0|gather_0|slice|split_equal_parts_1d_opset18|squeeze|unsqueeze_axis_0|"
    r"reduce_mean_default_axes_keepdims_example|reduce_sum_keepdims_example|argmax_default_axis_example|"
    r"where_example|equal|not_2d|and2d|cast_FLOAT_to_FLOAT16|cast_FLOAT_to_BFLOAT16|"
    r"cast_BFLOAT16_to_FLOAT|cast_FLOAT_to_FLOAT8E4M3FN|cast_FLOAT8E4M3FN_to_FLOAT|"
    r"cast_FLOAT_to_INT4|cast_INT4_to_FLOAT|cast_UINT4_to_UINT8|cast_FLOAT16_to_FLOAT|"
    r"dequantizelinear|quantizelinear|identity|shape|size|expand_dim_changed|tile|pad|"
    r"resize_upsample_scales_nearest|topk|cumsum_1d|einsum_batch_matmul|range_float_type_positive_delta|"
    r"constant|constantofshape_int_zeros|nonzero_example|onehot_with_axis|clip|erf|gelu_default_1|"
    r"lstm_defaults|gru_defaults|if|loop11|scan9_sum|strnormalizer_export_monday_casesensintive_lower"
    r")$"
)


@dataclass(frozen=True)
class NodeCase:
    """One test of the corpus: a model, its inputs, the expected outputs and tolerances."""

    name: str
    model: Any  # onnx.ModelProto
    inputs: tuple[Any, ...]
    outputs: tuple[Any, ...]
    rtol: float
    atol: float


def node_cases(pattern: str | re.Pattern[str] | None = None) -> list[NodeCase]:
    """The node tests of the installed ``onnx``, optionally those whose name matches ``pattern``
    (``re.search``)."""
    import onnx

    collected = _collected()
    regex = re.compile(pattern) if isinstance(pattern, str) else pattern
    cases = []
    for case in collected:
        if regex is not None and not regex.search(case.name):
            continue
        for inputs, outputs in case.data_sets or ():
            cases.append(
                NodeCase(
                    case.name,
                    case.model,
                    tuple(_value(v, onnx) for v in inputs),
                    tuple(_value(v, onnx) for v in outputs),
                    case.rtol,
                    case.atol,
                )
            )
    return cases


@functools.cache
def _collected() -> list[Any]:
    from onnx.backend.test.case import node

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the generators overflow casts on purpose
        return list(node.collect_testcases())


def _value(value: Any, onnx: Any) -> Any:
    if isinstance(value, onnx.TensorProto):
        return onnx.numpy_helper.to_array(value)
    if isinstance(value, np.generic):  # a 0-d tensor the generators wrote as np.float32(...)
        return np.asarray(value)
    return value
