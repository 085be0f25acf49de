"""The element types numpy lacks (bfloat16, float8, float4, int4) through OpenVINO: in and out as
``ml_dtypes`` arrays, bit for bit, on any CPU. Expectations come from ``ml_dtypes`` (exact
conversions of exactly representable values) and from ONNX Runtime, never from this CPU."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import unirun
from unirun import DType
from unirun.testing import passthrough
from unirun.testing._support import edge_values
from unirun.testing.onnx_backend import node_cases, onnx_backend, run_suite
from unirun_openvino._executable import NarrowContext, OpenVINOContext

Array = np.ndarray[Any, Any]
#: The types numpy lacks that OpenVINO computes with (its ONNX reader refuses the fnuz floats
#: and the 2-bit integers).
NARROW = (
    DType.BFLOAT16,
    DType.FLOAT8_E4M3FN,
    DType.FLOAT8_E5M2,
    DType.FLOAT8_E8M0,
    DType.FLOAT4_E2M1,
    DType.INT4,
    DType.UINT4,
)
#: Values every type above holds exactly (float8_e8m0 holds only powers of two; uint4 0..15).
EXACT: dict[DType, list[float]] = {
    DType.FLOAT8_E8M0: [1.0, 2.0, 0.5, 4.0, 0.25, 8.0, 1.0],
    DType.UINT4: [0.0, 1.0, 15.0, 7.0, 8.0, 3.0, 2.0],
    DType.INT4: [0.0, 1.0, -8.0, 7.0, -1.0, 3.0, -4.0],
}
DEFAULT_EXACT = [0.0, 1.0, -2.0, 0.5, 3.0, -1.5, 6.0]
X86 = platform.machine().lower() in ("x86_64", "amd64")


def _exact(dtype: DType, shape: tuple[int, ...]) -> Array:
    count = int(np.prod(shape))
    values = EXACT.get(dtype, DEFAULT_EXACT)
    return np.array((values * count)[:count], np.float32).reshape(shape)


def _cast(src: DType, dst: DType, shape: tuple[int, ...]) -> Any:
    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["y"], to=dst.onnx, name="cast")],
        "cast",
        [helper.make_tensor_value_info("x", src.onnx, list(shape))],
        [helper.make_tensor_value_info("y", dst.onnx, list(shape))],
    )
    opset = 24 if DType.FLOAT8_E8M0 in (src, dst) else 23
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 11
    return model


def _bits(array: Array) -> bytes:
    return bytes(np.ascontiguousarray(array).tobytes())


@pytest.mark.parametrize("dtype", NARROW, ids=str)
@pytest.mark.parametrize("shape", [(2, 3), (7,), (1, 5, 3), (), (0,)], ids=str)
def test_narrow_types_pass_through_identity_bit_for_bit(
    dtype: DType, shape: tuple[int, ...]
) -> None:
    """Identity and Reshape return the fed bits, odd element counts of 4-bit types included
    (OpenVINO packs two to a byte, like ONNX; ml_dtypes keeps one per byte)."""
    x = edge_values(dtype, shape)
    with unirun.load(passthrough(dtype, shape), backend="openvino", cache=False) as m:
        assert [s.dtype for s in (*m.inputs, *m.outputs)] == [dtype] * 3
        out = m({"x": x})
    for name, want in (("y", x), ("flat", x.reshape(-1))):
        got = out[name]
        assert got.dtype == dtype.numpy and got.shape == want.shape, (name, got.dtype, got.shape)
        assert _bits(got) == _bits(want), (name, got, want)


@pytest.mark.parametrize("dtype", NARROW, ids=str)
@pytest.mark.parametrize("shape", [(7,), (3, 3), (1,)], ids=str)
def test_narrow_types_cast_to_and_from_float32(dtype: DType, shape: tuple[int, ...]) -> None:
    """OpenVINO computes with them: a Cast from float32 gives what ml_dtypes gives for values
    the type holds exactly, and a Cast back gives the float32 values."""
    wide = _exact(dtype, shape)
    narrow = wide.astype(dtype.numpy)
    with unirun.load(_cast(DType.FLOAT32, dtype, shape), backend="openvino", cache=False) as m:
        got = m(wide)["y"]
    assert got.dtype == dtype.numpy and got.shape == shape
    assert _bits(got) == _bits(narrow), (got, narrow)
    with unirun.load(_cast(dtype, DType.FLOAT32, shape), backend="openvino", cache=False) as m:
        back = m(narrow)["y"]
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, wide)


def test_only_models_with_narrow_types_take_the_raw_bits_path() -> None:
    """The choice is made once per model at load: float32 models keep the plain infer
    request path; a model with one narrow port gets the bridge for that port only."""
    plain = unirun.load(_cast(DType.FLOAT32, DType.FLOAT16, (2,)), backend="openvino", cache=False)
    narrow = unirun.load(_cast(DType.FLOAT32, DType.INT4, (3,)), backend="openvino", cache=False)
    with plain, narrow:
        plain_context = plain._executable.create_context()  # type: ignore[attr-defined]
        narrow_context = narrow._executable.create_context()  # type: ignore[attr-defined]
        assert type(plain_context) is OpenVINOContext
        assert type(narrow_context) is NarrowContext
        plain_context.close()
        narrow_context.close()
        assert narrow(np.array([1, -2, 7], np.float32))["y"].tolist() == [1, -2, 7]


def _mixed() -> Any:
    """bfloat16 and float32 inputs, int4, bfloat16 and float32 outputs."""
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["a"], ["a32"], to=TensorProto.FLOAT),
            helper.make_node("Add", ["a32", "b"], ["sum"]),
            helper.make_node("Cast", ["sum"], ["q"], to=TensorProto.INT4),
            helper.make_node("Cast", ["sum"], ["s"], to=TensorProto.BFLOAT16),
        ],
        "mixed",
        [
            helper.make_tensor_value_info("a", TensorProto.BFLOAT16, ["n", 3]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["n", 3]),
        ],
        [
            helper.make_tensor_value_info("q", TensorProto.INT4, ["n", 3]),
            helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["n", 3]),
            helper.make_tensor_value_info("s", TensorProto.BFLOAT16, ["n", 3]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    return model


def test_narrow_and_plain_ports_mix_with_dynamic_sizes_and_read_only_feeds() -> None:
    a = np.array([[1, -2, 3], [0.5, 2, -4], [1, 1, 1]], np.float32).astype(ml_dtypes.bfloat16)
    b = np.array([[1, 0, 2], [0.5, -3, 1], [-8, 6, 0]], np.float32)
    a.flags.writeable = False
    b.flags.writeable = False
    before = _bits(a)
    with unirun.load(_mixed(), backend="openvino", cache=False) as m:
        assert [s.dtype for s in m.outputs] == [DType.INT4, DType.FLOAT32, DType.BFLOAT16]
        for rows in (3, 1, 2):
            out = m({"a": a[:rows], "b": b[:rows]})
            want = a[:rows].astype(np.float32) + b[:rows]
            np.testing.assert_array_equal(out["sum"], want)
            assert out["q"].dtype == ml_dtypes.int4 and out["q"].shape == (rows, 3)
            np.testing.assert_array_equal(out["q"].astype(np.float32), want)
            assert out["s"].dtype == ml_dtypes.bfloat16
            np.testing.assert_array_equal(out["s"].astype(np.float32), want)
        futures = [m.infer_async({"a": a[:r], "b": b[:r]}) for r in (1, 2, 3)]
        for rows, future in zip((1, 2, 3), futures, strict=True):
            assert future.result()["q"].shape == (rows, 3)
    assert _bits(a) == before


def _bf16_mlp(seed: int = 0) -> Any:
    """A model exported with bfloat16 weights and bfloat16 inputs/outputs: the weights and the
    activations go through float32 math (Cast), features are concatenated and transposed in
    bfloat16; batch is dynamic."""
    rng = np.random.default_rng(seed)

    def weight(name: str, *shape: int) -> Any:
        values = (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(ml_dtypes.bfloat16)
        return numpy_helper.from_array(values, name)

    nodes = [
        helper.make_node("Concat", ["x", "extra"], ["joined"], axis=1),
        helper.make_node("Cast", ["joined"], ["j32"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["w1"], ["w1_32"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["w2"], ["w2_32"], to=TensorProto.FLOAT),
        helper.make_node("MatMul", ["j32", "w1_32"], ["h"]),
        helper.make_node("Relu", ["h"], ["hr"]),
        helper.make_node("MatMul", ["hr", "w2_32"], ["logits"]),
        helper.make_node("Cast", ["logits"], ["logits16"], to=TensorProto.BFLOAT16),
        helper.make_node("Transpose", ["logits16"], ["scores"], perm=[1, 0]),
    ]
    graph = helper.make_graph(
        nodes,
        "bf16_mlp",
        [
            helper.make_tensor_value_info("x", TensorProto.BFLOAT16, ["batch", 12]),
            helper.make_tensor_value_info("extra", TensorProto.BFLOAT16, ["batch", 4]),
        ],
        [
            helper.make_tensor_value_info("scores", TensorProto.BFLOAT16, [5, "batch"]),
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 5]),
        ],
        [weight("w1", 16, 32), weight("w2", 32, 5)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    return model


def test_bfloat16_model_matches_onnx_runtime(tmp_path: Path) -> None:
    """End to end, through a saved artifact too: OpenVINO's answers for a bfloat16 model are
    ONNX Runtime's (float32 math inside, so within one bfloat16 rounding step)."""
    model = _bf16_mlp()
    rng = np.random.default_rng(1)
    feeds = {
        "x": rng.standard_normal((6, 12)).astype(ml_dtypes.bfloat16),
        "extra": rng.standard_normal((6, 4)).astype(ml_dtypes.bfloat16),
    }
    with unirun.load(model, backend="onnxruntime", cache=False) as ref:
        want = ref(feeds)
    with unirun.load(model, backend="openvino", device="cpu") as m:
        assert m.precision == "fp32"
        got = m(feeds)
        path = m.artifact.save(tmp_path / "bf16.ov.unirun")
    with unirun.load(path) as again:
        assert again.inputs[0].dtype is DType.BFLOAT16
        reloaded = again(feeds)
    for out in (got, reloaded):
        assert out["scores"].dtype == ml_dtypes.bfloat16 and out["scores"].shape == (5, 6)
        np.testing.assert_allclose(out["logits"], want["logits"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(
            out["scores"].astype(np.float32),
            want["scores"].astype(np.float32),
            rtol=2.0**-7,
            atol=1e-6,
        )


NARROW_NAMES = ("BFLOAT16", "bfloat16", "_bf16", "FLOAT8E4M3FN", "FLOAT8E5M2", "e4m3fn", "e5m2")
NARROW_NAMES += ("FLOAT4E2M1", "float4e2m1", "E8M0", "INT4", "int4", "UINT4", "uint4")


@pytest.mark.slow
def test_node_suite_cases_with_narrow_types_pass_through_unirun() -> None:
    """The ONNX node tests with bfloat16, float8, float4 and int4 inputs or outputs (which
    OpenVINO's own numpy API cannot feed) pass through unirun, apart from a few where OpenVINO
    computes otherwise than the spec (casts that should saturate, or round up)."""
    cases = [
        case
        for case in node_cases(r"^test_(cast|castlike|dequantizelinear|quantizelinear)_|_bf16")
        if any(n in case.name for n in NARROW_NAMES) and "FNUZ" not in case.name
    ]
    results = run_suite(onnx_backend("openvino"), cases, "cpu")
    passed = {name for name, outcome in results.items() if outcome.status == "pass"}
    assert len(passed) >= 70, sorted(set(results) - passed)
    for name in (
        "test_cast_FLOAT_to_BFLOAT16",
        "test_cast_BFLOAT16_to_FLOAT",
        "test_cast_FLOAT8E4M3FN_to_FLOAT",
        "test_cast_no_saturate_FLOAT_to_FLOAT8E5M2",
        "test_cast_FLOAT_to_INT4",
        "test_cast_UINT4_to_UINT8",
        "test_cast_FLOAT4E2M1_to_FLOAT",
        "test_cast_e8m0_FLOAT8E8M0_to_FLOAT",
        "test_dequantizelinear_int4",
        "test_quantizelinear_uint4",
        "test_quantizelinear_e4m3fn",
        "test_attention_4d_causal_bf16",
    ):
        assert name in passed, (name, results[name].message)


_SUBPROCESS = """
import json, sys
import numpy as np
import unirun
from unirun import DType
from unirun.testing import passthrough
from unirun.testing._support import edge_values
done = {}
for name in sys.argv[1:]:
    dtype = DType(name)
    x = edge_values(dtype, (3, 3))
    with unirun.load(passthrough(dtype, (3, 3)), backend="openvino", cache=False) as m:
        out = m({"x": x})
    done[name] = all(out[k].tobytes() == w.tobytes() for k, w in (("y", x), ("flat", x)))
print(json.dumps(done))
"""


@pytest.mark.slow
@pytest.mark.skipif(not X86, reason="ONEDNN_MAX_CPU_ISA names x86 instruction sets")
def test_narrow_types_cross_on_a_cpu_limited_to_avx2() -> None:
    """Exchanging the types does not depend on the CPU's bf16/fp16 arithmetic: the same round
    trips in a process whose oneDNN may use AVX2 at most (as on an AVX2-only EPYC)."""
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    names = [d.value for d in NARROW]
    done = subprocess.run(
        [sys.executable, "-c", _SUBPROCESS, *names],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == dict.fromkeys(names, True)
