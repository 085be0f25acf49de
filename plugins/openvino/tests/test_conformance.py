"""unirun-openvino against the conformance kit, and the ONNX node suite through unirun against
the same suite through OpenVINO's own Python API (``Core.read_model``/``compile_model``, exact
fp32)."""

from __future__ import annotations

from typing import ClassVar

from unirun.testing.conformance import BackendConformance
from unirun.testing.onnx_backend import SAMPLE, native_backend, node_cases, onnx_backend, run_suite


class TestOpenVINOConformance(BackendConformance):
    backend = "openvino"
    engine_modules = ("openvino",)
    xfail: ClassVar[dict[str, str]] = {
        "test_dtype_round_trip[float64]": "OpenVINO's CPU plugin computes float64 in float32: "
        "-inf comes back as -3.4e38 even through Identity",
        "test_dtype_round_trip[int64]": "OpenVINO's CPU plugin computes int64 in int32: "
        "INT64_MAX/INT64_MIN come back as -1/0 even through Identity",
    }
    nan_swallowing: ClassVar[dict[str, str]] = dict.fromkeys(
        ("Relu", "MaxPool", "ReduceMax", "Clip", "Max", "conv_net"),
        "OpenVINO's CPU plugin computes max/min-based ops (Relu, MaxPool, ReduceMax, "
        "Clip, Max) with kernels that return the non-NaN operand, so NaN does not propagate",
    )


#: Sample tests whose inputs or outputs numpy cannot hold (OpenVINO's own numpy API fails them).
NARROW_SAMPLE = (
    "test_cast_FLOAT_to_BFLOAT16",
    "test_cast_BFLOAT16_to_FLOAT",
    "test_cast_FLOAT8E4M3FN_to_FLOAT",
    "test_cast_FLOAT_to_INT4",
    "test_cast_INT4_to_FLOAT",
    "test_cast_UINT4_to_UINT8",
)


def test_node_suite_sample_passes_what_openvino_passes_natively() -> None:
    """A representative sample of the ONNX node suite (about 60 tests, a few seconds; the whole
    suite takes minutes and is recorded by docs/gen_support_matrix.py --run): every test that
    OpenVINO passes through its own API also passes through unirun, and so do the bfloat16,
    float8 and int4 ones, which unirun feeds as raw bits."""
    cases = node_cases(SAMPLE)
    ours = run_suite(onnx_backend("openvino"), cases, "cpu")
    theirs = run_suite(native_backend("openvino"), cases, "CPU")
    passed = {name for name, outcome in ours.items() if outcome.status == "pass"}
    lost = sorted(n for n, o in theirs.items() if o.status == "pass" and n not in passed)
    assert not lost, [(n, ours[n].message) for n in lost]
    missing = [(n, ours[n].message) for n in NARROW_SAMPLE if n not in passed]
    assert not missing, missing
    assert len(passed) >= 50
