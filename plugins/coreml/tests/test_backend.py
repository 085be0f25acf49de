"""The Core ML plugin through unirun's facade.

Compiling runs here for real. Running needs Core ML, which only macOS has: on Linux these tests
drive the plugin's executable with a stand-in for ``MLModel.predict`` built on the package's
numpy evaluator, so the name/dtype glue and the core's validation are exercised; what Core ML's
own kernels compute is not (the macOS-only tests at the end check that, and skip elsewhere).
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

import unirun
from unirun import BackendUnavailableError, Device, InputError, OptionsError, UnsupportedModelError
from unirun.model import Model
from unirun.testing import conv_net, embedding_model, load_request, multi_io
from unirun_coreml.backend import CoreMLBackend, CoreMLExecutable

ON_MAC = platform.system() == "Darwin"
NOT_MAC = "Core ML execution needs macOS; on other systems only compilation is checked"
BATCH = {"image": ((1, 3, 16, 16), (2, 3, 16, 16), (4, 3, 16, 16))}


def _standin_predict(package: Path) -> Any:
    """Core ML names and types in and out, like ``MLModel.predict``, computed by the evaluator."""
    from unirun_coreml import Evaluator

    evaluator = Evaluator(package)

    def predict(feeds: dict[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
        out = evaluator(feeds)
        return {m.coreml_name: out[m.onnx_name].astype(m.coreml_dtype) for m in evaluator.outputs}

    return predict


def _model(artifact: unirun.Artifact) -> Model:
    request = load_request(artifact, "cpu")
    executable = CoreMLExecutable(_standin_predict(artifact.path("model.mlpackage")), request)
    return Model(backend="coreml", device=Device("cpu"), executable=executable,
                 capabilities=CoreMLBackend.capabilities, artifact=artifact,
                 cache_status="off")  # fmt: skip


def _native(model: Any, feeds: dict[str, Any]) -> list[Any]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)  # type: ignore[no-any-return]


def test_compiles_on_any_os_and_records_the_name_map(tmp_path: Path) -> None:
    art = unirun.compile(conv_net(size=16), backend="coreml", shapes=BATCH)
    saved = art.save(tmp_path / "cnn.coreml.unirun")
    manifest = json.loads((saved / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["backend"] == "coreml" and manifest["device"] == "auto"
    assert (saved / "model.mlpackage" / "Manifest.json").is_file()
    io = manifest["extra"]["io"]
    assert [m["onnx_name"] for m in io["inputs"]] == ["image"]
    assert manifest["inputs"][0]["shape"] == ["N", 3, 16, 16]


def test_backends_says_why_it_cannot_run_here() -> None:
    info = {i.name: i for i in unirun.backends()}["coreml"]
    assert info.can_compile
    if not ON_MAC:
        assert not info.available and "needs macOS" in info.reason


@pytest.mark.skipif(ON_MAC, reason="the refusal is what non-macOS systems see")
def test_loading_off_macos_raises_backend_unavailable(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError, match="Core ML execution needs macOS"):
        unirun.load(conv_net(size=16), backend="coreml", shapes=BATCH)
    saved = unirun.compile(conv_net(size=16), backend="coreml", shapes=BATCH).save(tmp_path / "a")
    with pytest.raises(BackendUnavailableError, match="needs macOS"):
        unirun.load(saved)
    with pytest.raises(BackendUnavailableError, match="needs macOS"):
        CoreMLBackend().load(load_request(unirun.Artifact.open(saved), "cpu"))


def test_outputs_match_onnxruntime_with_dynamic_batch() -> None:
    proto = conv_net(size=16)
    model = _model(unirun.compile(proto, backend="coreml", shapes=BATCH))
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 16, 16)).astype(np.float32)
        np.testing.assert_allclose(model(x)["logits"], _native(proto, {"image": x})[0],
                                   rtol=1e-5, atol=1e-5)  # fmt: skip
    with pytest.raises(InputError, match=r"float32\[1\.\.4, 3, 16, 16\]"):
        model(np.zeros((5, 3, 16, 16), np.float32))


def test_integer_bool_and_scalar_io_come_back_in_onnx_types() -> None:
    ids = np.array([[1, 2, 0], [3, 0, 0]], np.int64)
    scale = np.array([2.0], np.float32)
    shapes = {"ids": ((1, 1), (2, 3), (4, 8))}
    emb = _model(unirun.compile(embedding_model(), backend="coreml", shapes=shapes))
    out = emb({"ids": ids, "scale": scale})
    expected = _native(embedding_model(), {"ids": ids, "scale": scale})
    assert out["count"].dtype == np.int64 and out["count"].tolist() == expected[1].tolist()
    np.testing.assert_allclose(out["pooled"], expected[0], rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match="outside int32"):
        emb({"ids": np.array([[2**40]], np.int64), "scale": scale})

    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    mask = np.array([[True, False, True], [False, True, False]])
    multi = _model(unirun.compile(multi_io(), backend="coreml"))
    got = multi({"x": x, "mask": mask})
    assert got["flag"].dtype == np.bool_ and got["flag"].tolist() == (~mask).tolist()
    assert got["total"].shape == () and float(got["total"]) == pytest.approx(6.0)


def test_shape_choices_become_enumerated_shapes() -> None:
    import coremltools as ct

    shapes = {"image": {"choices": [(1, 3, 16, 16), (4, 3, 16, 16)]}}
    art = unirun.compile(conv_net(size=16), backend="coreml", shapes=shapes)
    spec = ct.models.MLModel(str(art.path("model.mlpackage")), skip_model_load=True).get_spec()
    enumerated = spec.description.input[0].type.multiArrayType.enumeratedShapes.shapes
    assert [tuple(s.shape) for s in enumerated] == [(1, 3, 16, 16), (4, 3, 16, 16)]
    with pytest.raises(InputError, match="one of"):
        _model(art)(np.zeros((2, 3, 16, 16), np.float32))


def test_fp16_build_stays_within_the_documented_bound() -> None:
    proto = conv_net(size=16)
    model = _model(unirun.compile(proto, backend="coreml", shapes=BATCH, precision="fp16"))
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    got, want = model(x)["logits"], _native(proto, {"image": x})[0]
    assert np.max(np.abs(got - want)) <= 1e-2 * np.max(np.abs(want)) + 1e-3


def test_typed_errors() -> None:
    with pytest.raises(OptionsError, match="needs shapes bounds"):
        unirun.compile(conv_net(), backend="coreml")  # dynamic batch, no bounds
    with pytest.raises(OptionsError, match="does not support precision 'bf16'"):
        unirun.compile(conv_net(size=16), backend="coreml", shapes=BATCH, precision="bf16")
    with pytest.raises(OptionsError, match="unknown deployment target 'iOS99'"):
        unirun.compile(conv_net(size=16), backend="coreml", shapes=BATCH,
                       options={"deployment_target": "iOS99"})  # fmt: skip
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("NonMaxSuppression", ["boxes", "scores"], ["keep"], name="nms")],
        "nms",
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 4, 4]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 1, 4])],
        [helper.make_tensor_value_info("keep", TensorProto.INT64, [None, 3])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(UnsupportedModelError, match="NonMaxSuppression") as info:
        unirun.compile(model, backend="coreml")
    assert info.value.ops == [("nms", "NonMaxSuppression")]
    source = unirun.source.OnnxModel.from_source(model)
    assert CoreMLBackend().unsupported_ops(source, Device("ane"), {}) == [
        ("nms", "NonMaxSuppression")
    ]


def test_constant_inputs_are_baked_in() -> None:
    proto = embedding_model()
    shapes = {"ids": ((1, 1), (2, 3), (4, 8))}
    art = unirun.compile(proto, backend="coreml", shapes=shapes,
                         options={"constant_inputs": {"scale": [0.5]}})  # fmt: skip
    model = _model(art)
    assert [spec.name for spec in model.inputs] == ["ids"]
    ids = np.array([[1, 2, 3]], np.int64)
    expected = _native(proto, {"ids": ids, "scale": np.array([0.5], np.float32)})[0]
    np.testing.assert_allclose(model(ids)["pooled"], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not ON_MAC, reason=NOT_MAC)
@pytest.mark.parametrize("device", ["cpu", "gpu", "ane", "auto"])
def test_predict_on_macos_matches_onnxruntime(device: str) -> None:  # pragma: no cover
    proto = conv_net(size=16)
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    with unirun.load(proto, backend="coreml", device=device, shapes=BATCH) as model:
        got = model(x)["logits"]
    want = _native(proto, {"image": x})[0]
    assert np.max(np.abs(got - want)) <= 1e-2 * np.max(np.abs(want)) + 1e-3


@pytest.mark.skipif(not ON_MAC, reason=NOT_MAC)
def test_predict_on_macos_handles_int_bool_and_scalars() -> None:  # pragma: no cover
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    mask = np.array([[True, False, True], [False, True, False]])
    with unirun.load(multi_io(), backend="coreml", device="cpu") as model:
        got = model({"x": x, "mask": mask})
    assert got["flag"].tolist() == (~mask).tolist()
    assert float(got["total"]) == pytest.approx(6.0)
