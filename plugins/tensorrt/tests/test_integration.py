"""Building and running TensorRT engines through unirun. Every test needs TensorRT and a CUDA
GPU and skips, with the reason the backend's probe gives, without them; ``bench/gpu_check.py``
runs them on a GPU machine. ONNX Runtime (CPU) is the reference."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import unirun
from unirun.errors import ArtifactError, UnsupportedModelError
from unirun.testing import models

pytestmark = pytest.mark.usefixtures("tensorrt")

Array = np.ndarray[Any, Any]
SHAPES = {"image": ((1, 3, 16, 16), (4, 3, 16, 16), (8, 3, 16, 16))}


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNIRUN_CACHE_DIR", str(tmp_path / "cache"))


def reference(model: Any, feeds: dict[str, Array]) -> list[Array]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return list(session.run(None, feeds))


def image(batch: int) -> Array:
    return np.random.default_rng(batch).standard_normal((batch, 3, 16, 16)).astype(np.float32)


def scale_error(got: Array, want: Array) -> float:
    return float(np.abs(got - want).max() / np.abs(want).max())


def test_fp32_dynamic_batch_matches_onnx_runtime() -> None:
    proto = models.conv_net(size=16)
    with unirun.load(proto, backend="tensorrt", device="cuda", shapes=SHAPES) as model:
        assert model.backend == "tensorrt" and model.device.kind == "cuda"
        assert [s.shape for s in model.inputs] == [("N", 3, 16, 16)]
        for batch in (1, 4, 8):
            x = image(batch)
            got = model({"image": x})["logits"]
            np.testing.assert_allclose(got, reference(proto, {"image": x})[0], rtol=1e-4, atol=1e-5)
        extra = model.artifact.manifest.extra
        assert extra["cleared_flags"] == ["TF32"]  # exact fp32
        with pytest.raises(unirun.InputError, match="image"):
            model({"image": image(9)})


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_low_precision(precision: str) -> None:
    proto = models.transformer_block()
    shapes = {"x": ((1, 1, 32), (2, 8, 32), (4, 16, 32))}
    x = np.random.default_rng(0).standard_normal((2, 8, 32)).astype(np.float32)
    with unirun.load(proto, backend="tensorrt", precision=precision, shapes=shapes) as model:
        got = model({"x": x})["y"]
        extra = model.artifact.manifest.extra
    assert got.dtype == np.float32
    assert scale_error(got, reference(proto, {"x": x})[0]) < (2e-2 if precision == "fp16" else 5e-2)
    # TensorRT 11 builds from a converted model, TensorRT 10 from flags
    assert extra["converted_onnx"] is extra["strongly_typed"]
    if not extra["strongly_typed"]:
        assert extra["builder_flags"] == [precision.upper()]


def test_several_profiles() -> None:
    proto = models.conv_net(size=16)
    options = {
        "profiles": [
            {"image": ((1, 3, 16, 16), (1, 3, 16, 16), (2, 3, 16, 16))},
            {"image": ((6, 3, 16, 16), (8, 3, 16, 16), (8, 3, 16, 16))},
        ]
    }
    with unirun.load(proto, backend="tensorrt", shapes=SHAPES, options=options) as model:
        assert len(model.artifact.manifest.extra["profiles"]) == 3
        for batch in (1, 3, 8, 2, 7):
            x = image(batch)
            got = model({"image": x})["logits"]
            np.testing.assert_allclose(got, reference(proto, {"image": x})[0], rtol=1e-4, atol=1e-5)


def test_timing_cache_is_kept_and_shared(tmp_path: Path) -> None:
    unirun.compile(models.conv_net(size=16), backend="tensorrt", shapes=SHAPES)
    caches = list((tmp_path / "cache" / "engines" / "tensorrt" / "timing").glob("*.cache"))
    assert len(caches) == 1 and caches[0].stat().st_size > 0
    size = caches[0].stat().st_size
    unirun.compile(models.mlp(), backend="tensorrt", shapes={"x": ((1, 16), (4, 16), (8, 16))})
    assert caches[0].stat().st_size >= size


def test_saved_plan_round_trip_and_mismatch(tmp_path: Path) -> None:
    proto = models.conv_net(size=16)
    saved = unirun.compile(proto, backend="tensorrt", shapes=SHAPES).save(tmp_path / "a.unirun")
    x = image(2)
    with unirun.load(saved) as model:
        np.testing.assert_allclose(
            model({"image": x})["logits"], reference(proto, {"image": x})[0], rtol=1e-4, atol=1e-5
        )
    manifest = json.loads((saved / "manifest.json").read_text(encoding="utf-8"))
    manifest["extra"]["plan"]["gpu_name"] = "Some Other GPU"
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError) as info:
        unirun.load(saved)
    assert info.value.field == "extra.plan.gpu_name"


def test_unsupported_operator_names_the_node() -> None:
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["r"], name="relu"),
            helper.make_node("Frobnicate", ["r"], ["y"], name="mystery", domain="com.example"),
        ],
        "custom",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    )
    with pytest.raises(UnsupportedModelError) as info:
        unirun.compile(proto, backend="tensorrt")
    assert ("mystery", "Frobnicate") in info.value.ops


def test_data_dependent_output_shape() -> None:
    graph = helper.make_graph(
        [helper.make_node("NonZero", ["x"], ["y"])],
        "nonzero",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 5])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, [2, "k"])],
    )
    proto = models._model(graph)
    with unirun.load(proto, backend="tensorrt") as model:
        for density in (0.1, 0.9):
            x = (np.random.default_rng(1).random((4, 5)) < density).astype(np.float32)
            np.testing.assert_array_equal(model({"x": x})["y"], np.stack(np.nonzero(x)))


def test_external_weights(tmp_path: Path) -> None:
    path = tmp_path / "mlp.onnx"
    onnx.save(
        models.mlp(), str(path), save_as_external_data=True, location="w.bin", size_threshold=0
    )
    x = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    with unirun.load(path, backend="tensorrt", shapes={"x": ((1, 16), (3, 16), (8, 16))}) as m:
        np.testing.assert_allclose(
            m({"x": x})["probs"], reference(models.mlp(), {"x": x})[0], rtol=1e-4, atol=1e-6
        )


def test_concurrent_calls_use_their_own_contexts() -> None:
    proto = models.conv_net(size=16)
    inputs = {b: image(b) for b in (1, 2, 3, 4, 5, 6, 7, 8)}
    want = {b: reference(proto, {"image": x})[0] for b, x in inputs.items()}
    errors: list[BaseException] = []
    with unirun.load(proto, backend="tensorrt", shapes=SHAPES) as model:

        def work(batch: int) -> None:
            try:
                for _ in range(20):
                    got = model({"image": inputs[batch]})["logits"]
                    np.testing.assert_allclose(got, want[batch], rtol=1e-4, atol=1e-5)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(b,)) for b in inputs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors[0]


def test_device_tensors_in_and_out_without_host_copies() -> None:
    """torch CUDA tensors in, ``outputs="device"`` out, read back through DLPack; the outputs
    stay valid after later calls (they own their memory)."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("this torch build has no CUDA")
    proto = models.conv_net(size=16)
    with unirun.load(proto, backend="tensorrt", device="cuda", shapes=SHAPES) as model:
        first, second = image(4), image(2)
        outs = []
        for x in (first, second):
            side = torch.cuda.Stream()
            with torch.cuda.stream(side):  # produced on another stream: unirun must wait
                tensor = torch.from_numpy(x).cuda(non_blocking=True) * 1.0
            outs.append(model({"image": tensor}, outputs="device")["logits"])
        for out, x in zip(outs, (first, second), strict=True):
            assert isinstance(out, unirun.DeviceTensor) and str(out.device) == "cuda:0"
            got = torch.from_dlpack(out).cpu().numpy()
            want = reference(proto, {"image": x})[0]
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
        host = model(torch.from_numpy(first).cuda())["logits"]  # device in, numpy out
        np.testing.assert_allclose(
            host, reference(proto, {"image": first})[0], rtol=1e-4, atol=1e-5
        )
        with pytest.raises(unirun.InputError, match="float16"):
            model(torch.zeros(4, 3, 16, 16, device="cuda", dtype=torch.float16))
