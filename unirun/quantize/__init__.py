"""Reduced precision: int8 calibration and forms, fp16 graphs, and the accuracy they keep.

``unirun.load(model, precision="int8", calibration=feeds_or_directory)`` lands here: the
calibration data is checked against the model, the activation ranges are computed once (ONNX
Runtime's min/max calibrator, cached by model and data), each int8 form the backend declares
(``Capabilities.int8_forms``) is written from them, compiled, and measured against the fp32
model on held-back samples; the first form within the bound and not slower than fp32 is kept,
and the manifest records how it was made and what was measured. See ``docs/precision.md``.

Importing this package imports no engine; the tools load when a build needs them
(``pip install 'unirun[quantize]'``).
"""

from __future__ import annotations

from ._calibration import MIN_SAMPLES, Calibration
from ._cpu import CpuInt8, cpu_int8
from ._fp16 import compute_precision, to_fp16
from ._metrics import (
    BOUND_COSINE,
    BOUND_RELATIVE,
    BOUND_TEXT,
    Agreement,
    Meters,
    compare_outputs,
    within_bound,
)
from ._record import SLOWER, Candidate, Int8Record, Speed, check, summary

__all__ = [
    "BOUND_COSINE",
    "BOUND_RELATIVE",
    "BOUND_TEXT",
    "MIN_SAMPLES",
    "SLOWER",
    "Agreement",
    "Calibration",
    "Candidate",
    "CpuInt8",
    "Int8Record",
    "Meters",
    "Speed",
    "check",
    "compare_outputs",
    "compute_precision",
    "cpu_int8",
    "summary",
    "to_fp16",
    "within_bound",
]
