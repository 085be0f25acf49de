"""unirun-onnxruntime against the conformance kit, and the ONNX node suite through unirun against
the same suite through onnxruntime's own backend API (``onnxruntime.backend``)."""

from __future__ import annotations

from typing import Any, ClassVar

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import unirun
from unirun import DType
from unirun.testing.conformance import BackendConformance
from unirun.testing.onnx_backend import (
    Outcome,
    native_backend,
    node_cases,
    onnx_backend,
    run_suite,
)


class TestOnnxRuntimeConformance(BackendConformance):
    backend = "onnxruntime"
    engine_modules = ("onnxruntime",)
    xfail: ClassVar[dict[str, str]] = {
        f"test_dtype_round_trip[{t}-cpu]": f"ONNX Runtime 1.32 carries {t} (Cast has kernels: "
        "test_packed_types_go_in_and_out) but has no Identity kernel for it"
        for t in ("int4", "uint4", "int2", "uint2", "float4_e2m1fn", "float8_e8m0fnu")
    }


def _cast(src: int, dst: int, shape: list[int]) -> Any:
    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["y"], to=dst, name="cast")],
        "cast",
        [helper.make_tensor_value_info("x", src, shape)],
        [helper.make_tensor_value_info("y", dst, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    return model


@pytest.mark.parametrize("dtype", [DType.INT4, DType.UINT4])
@pytest.mark.parametrize("shape", [[7], [2, 3], [0]])
def test_packed_types_go_in_and_out(dtype: DType, shape: list[int]) -> None:
    """4-bit integers (the 4-bit types onnxruntime computes with) cross its API packed two to
    a byte, odd counts included."""
    values = np.array([0, 1, -2, 3, -4, 5, 6][: int(np.prod(shape))], np.float32)
    if dtype is DType.UINT4:
        values = np.abs(values)
    x = values.astype(dtype.numpy).reshape(shape)
    with unirun.load(_cast(dtype.onnx, TensorProto.FLOAT, shape), cache=False) as m:
        np.testing.assert_array_equal(m(x)["y"], x.astype(np.float32))
    with unirun.load(_cast(TensorProto.FLOAT, dtype.onnx, shape), cache=False) as m:
        out = m(x.astype(np.float32))["y"]
    assert out.dtype == dtype.numpy and out.shape == tuple(shape)
    np.testing.assert_array_equal(out.astype(np.float32), x.astype(np.float32))


def test_bfloat16_model_keeps_the_plain_path_for_other_models() -> None:
    """Only models with such types use the OrtValue bridge; others call the session's compiled
    run directly."""
    plain = unirun.load(_cast(TensorProto.FLOAT, TensorProto.DOUBLE, [2]), cache=False)
    narrow = unirun.load(_cast(TensorProto.FLOAT, TensorProto.BFLOAT16, [2]), cache=False)
    with plain, narrow:
        assert plain._executable.direct and not narrow._executable.direct
        out = narrow(np.array([1.5, -3.0], np.float32))["y"]
    assert out.dtype == ml_dtypes.bfloat16 and out.tolist() == [1.5, -3.0]


def _passed(results: dict[str, Outcome]) -> set[str]:
    return {name for name, outcome in results.items() if outcome.status == "pass"}


def _non_tensor_io(model: Any) -> bool:
    values = (*model.graph.input, *model.graph.output)
    return any(not v.type.HasField("tensor_type") for v in values)


@pytest.mark.slow
def test_node_suite_passes_what_onnxruntime_passes_natively() -> None:
    """The whole ONNX node suite (about 10 s): through unirun, every test that onnxruntime's
    own backend passes also passes, except those with sequence or optional inputs and outputs,
    which unirun's tensor-only API does not carry; and many tests with bfloat16/float8/int4
    inputs or outputs, which onnxruntime's numpy bridge cannot feed, pass through unirun."""
    cases = node_cases()
    models = {case.name: case.model for case in cases}
    ours = run_suite(onnx_backend("onnxruntime"), cases, "cpu")
    theirs = run_suite(native_backend("onnxruntime"), cases, "CPU")
    lost = sorted(n for n in _passed(theirs) - _passed(ours) if not _non_tensor_io(models[n]))
    assert not lost, [(n, ours[n].message) for n in lost]
    assert len(_passed(ours)) >= len(_passed(theirs)) + 100


#: Where a narrow type is carried through ONNX Runtime's numpy API: a type holding its values.
_WIDE = {
    DType.INT4: DType.INT8,
    DType.INT2: DType.INT8,
    DType.UINT4: DType.UINT8,
    DType.UINT2: DType.UINT8,
}


def _narrow(value: Any) -> DType | None:
    if not value.type.HasField("tensor_type"):
        return None
    try:
        dtype = DType.from_onnx(value.type.tensor_type.elem_type)
    except ValueError:
        return None
    return None if dtype.numpy_native or dtype is DType.STRING else dtype


def _wide(dtype: DType) -> DType:
    return _WIDE.get(dtype, DType.FLOAT32)


def _widened(model: Any) -> Any:
    """``model`` with every narrow graph input and output widened through a Cast, so that
    ONNX Runtime's own numpy API runs it: ONNX Runtime's answer, exactly, for values the
    narrow types hold."""
    wide = onnx.ModelProto()
    wide.CopyFrom(model)
    graph = wide.graph
    constants = {t.name for t in graph.initializer}
    before, after = [], []
    for value in graph.input:
        dtype = _narrow(value)
        if dtype is None or value.name in constants:
            continue
        name = value.name
        value.name = name + "__wide"
        value.type.tensor_type.elem_type = _wide(dtype).onnx
        before.append(helper.make_node("Cast", [value.name], [name], to=dtype.onnx))
    for value in graph.output:
        dtype = _narrow(value)
        if dtype is None:
            continue
        name = value.name
        value.name = name + "__wide"
        value.type.tensor_type.elem_type = _wide(dtype).onnx
        after.append(helper.make_node("Cast", [name], [value.name], to=_wide(dtype).onnx))
    nodes = [*before, *graph.node, *after]
    del graph.node[:]
    graph.node.extend(nodes)
    return wide


def _onnxruntime_answer(case: Any) -> list[Any] | None:
    """ONNX Runtime's own outputs for ``case`` (narrow types widened), or None if it cannot
    run the case at all."""
    model = _widened(case.model)
    try:
        session = ort.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        feeds = {}
        for arg, value in zip(session.get_inputs(), case.inputs, strict=False):
            array = np.asarray(value)
            dtype = DType.from_numpy(array.dtype)
            feeds[arg.name] = array if dtype.numpy_native else array.astype(_wide(dtype).numpy)
        with np.errstate(all="ignore"):
            return list(session.run(None, feeds))
    except Exception:  # e.g. no kernel for float4, which unirun cannot change
        return None


@pytest.mark.slow
def test_narrow_types_give_what_onnxruntime_itself_computes() -> None:
    """Every node test with bfloat16, float8, int4 or int2 inputs or outputs that ONNX Runtime
    runs (fed through a wider type) gives, through unirun's raw-bits bridge, exactly ONNX
    Runtime's own answer. The expectation comes from the engine, not from the test data: for
    out-of-range casts to 4- and 2-bit integers the ONNX spec leaves the result undefined, and
    ONNX Runtime wraps where the data generated by ml_dtypes has 0."""
    narrow = [
        case
        for case in node_cases()
        if any(_narrow(v) for v in (*case.model.graph.input, *case.model.graph.output))
    ]
    backend = onnx_backend("onnxruntime")
    compared = []
    for case in narrow:
        want = _onnxruntime_answer(case)
        if want is None:
            continue
        rep = backend.prepare(case.model, "CPU")
        try:
            got = rep.run(list(case.inputs))
        finally:
            rep.close()
        for index, (value, expected) in enumerate(zip(got, want, strict=True)):
            dtype = DType.from_numpy(value.dtype)
            value = value if dtype.numpy_native else value.astype(_wide(dtype).numpy)
            np.testing.assert_array_equal(value, expected, err_msg=f"{case.name} output {index}")
        compared.append(case.name)
    assert len(compared) >= 100, compared  # 151 of 191 with onnxruntime 1.32, onnx 1.23
    assert {"test_cast_FLOAT_to_INT4", "test_cast_FLOAT_to_BFLOAT16"} <= set(compared)
