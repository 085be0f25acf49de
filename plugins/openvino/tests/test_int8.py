"""int8 on the real OpenVINO: the Q/DQ form folded into its int8 primitives, and the fallback
to int8 weights where quantized activations lose too much."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import unirun
from unirun.artifact import Artifact
from unirun.quantize import within_bound
from unirun.testing import outlier_inputs, outlier_mlp, resnet_like

Array = np.ndarray[Any, Any]


def _images(count: int, size: int = 16) -> list[dict[str, Array]]:
    rng = np.random.default_rng(0)
    return [
        {"image": rng.standard_normal((2, 3, size, size)).astype(np.float32)} for _ in range(count)
    ]


@pytest.mark.slow
def test_int8_cnn_is_within_the_bound_and_runs_int8_primitives() -> None:
    feeds = _images(24)
    with unirun.load(
        resnet_like(width=16, size=16, classes=10),
        backend="openvino",
        device="cpu",
        precision="int8",
        calibration=feeds,
    ) as q:
        record = q.artifact.manifest.extra["quantization"]
        # int8 math, unless the static form measured slower here and int8 weights won
        assert q.precision == ("fp32" if record["form"] == "weights" else "int8")
        assert q.artifact.manifest.extra["properties"]["INFERENCE_PRECISION_HINT"] == "f32"
        q(feeds[0])
    static = record["tried"][0]
    assert static["form"] == "qdq-static" and record["verified"] is True
    assert within_bound(static["accuracy"]["logits"]), static["accuracy"]
    assert within_bound(record["accuracy"]["logits"]), record["accuracy"]
    # Ask OpenVINO what it made of the Q/DQ graph: convolutions run in u8 (whatever the ISA).
    import openvino as ov

    ir = q.artifact.directory / "model.xml"
    compiled = ov.Core().compile_model(str(ir), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    convs = [
        op.get_rt_info()["runtimePrecision"].astype(str)
        for op in compiled.get_runtime_model().get_ordered_ops()
        if op.get_rt_info()["layerType"].astype(str) == "Convolution"
    ]
    if record["form"] == "qdq-static":
        assert convs and set(convs) <= {"u8", "i8"}, convs


def _outlier_int8(**options: Any) -> Artifact:
    """:func:`outlier_mlp` compiled to int8 on the CPU: the static form fails the bound there."""
    return unirun.compile(
        outlier_mlp(),
        backend="openvino",
        device="cpu",
        precision="int8",
        calibration=outlier_inputs(20),
        options=options,
    )


@pytest.mark.slow
def test_outlier_activations_fall_back_to_int8_weights() -> None:
    """Per-tensor activation quantization cannot hold this model; int8 weights with float
    activations can (the plugin turns OpenVINO's per-call activation quantization off)."""
    art = _outlier_int8()
    record = art.manifest.extra["quantization"]
    assert art.manifest.extra["properties"]["DYNAMIC_QUANTIZATION_GROUP_SIZE"] == 0
    static, weights = record["tried"]
    assert static["form"] == "qdq-static" and not within_bound(static["accuracy"]["y"])
    assert weights["form"] == "weights" and within_bound(weights["accuracy"]["y"])
    assert record["form"] == "weights"
    assert art.manifest.computed_precision == "fp32"  # int8 weights, float math: reported


def _fc_precisions(model: unirun.Model) -> set[str]:
    runtime = model._executable._compiled.get_runtime_model()  # type: ignore[attr-defined]
    return {
        op.get_rt_info()["runtimePrecision"].astype(str)
        for op in runtime.get_ordered_ops()
        if op.get_rt_info()["layerType"].astype(str) == "FullyConnected"
    }


@pytest.mark.slow
def test_int8_weights_are_expanded_to_float_unless_asked_to_stay_compressed(
    tmp_path: Any,
) -> None:
    """The int8-weights form computes in float: by default OpenVINO gets float32 weights, so
    it does not expand them on every call; the artifact keeps them int8 (no blob, whose
    weights would be float32) and every load, from the cache or a saved folder, expands
    them again. ``int8_weights="compressed"`` keeps OpenVINO's own way. Same answers."""
    x = outlier_inputs(1, seed=7)[0]
    answers = {}
    for weights in ("expand", "compressed"):
        art = _outlier_int8(int8_weights=weights)
        assert art.manifest.extra["quantization"]["form"] == "weights"
        files = {f.path for f in art.manifest.files}
        assert art.manifest.extra["expand_weights"] is (weights == "expand")
        assert ("model.blob" in files) is (weights == "compressed"), files
        saved = art.save(tmp_path / weights)
        with unirun.load(saved) as model:
            if weights == "expand":
                assert _fc_precisions(model) == {"f32"}
            answers[weights] = model(x)["y"]
    np.testing.assert_allclose(answers["expand"], answers["compressed"], rtol=1e-5, atol=1e-5)
