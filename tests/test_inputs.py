"""Invented inputs (unirun.inputs): sizes by role, values mined from the graph, retries with
larger sizes on real engines, and the error that says what was invented and how to give it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import unirun
from unirun import DType, InferenceError, InputError, TensorSpec
from unirun.inputs import InputPlan, Value, run_first
from unirun.options import ShapeRange
from unirun.source import graph_inputs
from unirun.testing import byte_classifier, embedding_model, pooled_cnn, streaming_vad


def plan(model: Any, **kwargs: Any) -> InputPlan:
    return InputPlan(graph_inputs(model), graph=model, **kwargs)


def shapes(p: InputPlan) -> dict[str, tuple[int, ...]]:
    return {k: v.shape for k, v in p.feeds().items()}


def test_a_dynamic_cnn_gets_one_image_of_224_pixels_never_1x1() -> None:
    # exporters name the dims p2o.DynamicDimension.N: the role comes from rank and axis
    p = plan(pooled_cnn())
    assert shapes(p) == {"x": (1, 3, 224, 224)}
    assert p.feeds()["x"].dtype == np.float32
    assert p.describe() == "x float32[1, 3, 224, 224] (random normal)"
    nhwc = TensorSpec("img", DType.UINT8, ("n", "h", "w", 3))
    image = InputPlan([nhwc]).feeds()["img"]
    assert image.shape == (1, 224, 224, 3) and image.max() > 200  # uint8 images span 0..255


def test_the_streaming_model_gets_a_sample_rate_from_the_graph_and_a_batch_1_state() -> None:
    p = plan(streaming_vad())
    feeds = p.feeds()
    assert shapes(p) == {"input": (1, 256), "state": (2, 1, 32), "sr": ()}
    # Equal(sr, 16000) decides the If: the value comes from the graph, not a random integer
    assert feeds["sr"].dtype == np.int64 and int(feeds["sr"]) == 16000
    assert "the graph compares it with 16000" in p.invented["sr"].how


def test_indices_span_the_table_they_gather_from() -> None:
    ids = plan(byte_classifier()).feeds()["bytes"]
    assert ids.dtype == np.int32 and ids.shape == (1, 256)
    assert ids.min() >= 0 and ids.max() <= 256 and ids.max() > 100  # all of 0..256, not 0..9
    embedding = plan(embedding_model()).feeds()
    assert embedding["ids"].max() < 50  # a 50-row table
    assert 0.5 <= float(embedding["scale"][0]) <= 1.5  # a float scalar: a positive scale


def test_one_symbol_gets_one_size_and_given_arrays_fix_it() -> None:
    specs = [
        TensorSpec("input_ids", DType.INT64, ("batch", "seq")),
        TensorSpec("attention_mask", DType.INT64, ("batch", "seq")),
        TensorSpec("position_ids", DType.INT64, ("batch", "seq")),
    ]
    feeds = InputPlan(specs).feeds()
    assert {v.shape for v in feeds.values()} == {(1, 256)}
    assert (feeds["attention_mask"] == 1).all()
    np.testing.assert_array_equal(feeds["position_ids"][0], np.arange(256))
    given = InputPlan(specs, given={"input_ids": np.zeros((2, 7), np.int64)}).feeds()
    assert given["attention_mask"].shape == given["position_ids"].shape == (2, 7)


def test_declared_shapes_win_and_are_never_grown() -> None:
    bounds = {"x": ShapeRange(min=(1, 3, 32, 32), opt=(2, 3, 64, 48), max=(4, 3, 512, 512))}
    p = plan(pooled_cnn(), shapes=bounds)
    assert shapes(p) == {"x": (2, 3, 64, 48)} and p.sized == []
    assert not p.grow()


def test_literals_take_the_input_type_and_refuse_what_does_not_fit() -> None:
    specs = graph_inputs(streaming_vad())
    p = InputPlan(specs, given={"sr": Value("8000", np.asarray(8000))})
    assert p.feeds()["sr"].dtype == np.int64 and int(p.feeds()["sr"]) == 8000
    assert "sr" not in p.invented
    assert Value("8000.0", np.asarray(8000.0)).to(specs[2]).dtype == np.int64
    with pytest.raises(InputError, match=r"input 'sr' takes int64; '16000\.5' is not a value"):
        InputPlan(specs, given={"sr": Value("16000.5", np.asarray(16000.5))})
    one = TensorSpec("scale", DType.FLOAT32, (1,))
    assert Value("2", np.asarray(2)).to(one).shape == (1,)
    with pytest.raises(InputError, match="no input named 'rate'"):
        InputPlan(specs, given={"rate": np.asarray(1)})


def test_what_cannot_be_invented_says_which_flag_gives_it() -> None:
    unknown_rank = TensorSpec("blob", DType.FLOAT32, None)
    with pytest.raises(InputError, match=r"--input blob=FILE\.npy or --shape blob=DIMS"):
        InputPlan([unknown_rank])


def test_growing_doubles_images_and_quadruples_lengths_twice_at_most() -> None:
    p = plan(streaming_vad())
    sizes = [p.sizes()]
    while p.grow():
        sizes.append(p.sizes())
    assert sizes == ["input 1x256", "input 1x1024", "input 1x4096"]
    cnn = plan(pooled_cnn())
    assert cnn.grow() and shapes(cnn)["x"] == (1, 3, 448, 448)
    assert cnn.fix() == "give real inputs: --input x=FILE.npy --shape x=1x3xHxW"
    assert "sample={'x': ...}, or the sizes with shapes={'x': (1, 3, H, W)}" in cnn.fix("api")


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino", "reference"])
def test_an_engine_that_rejects_small_inputs_gets_larger_ones(backend: str) -> None:
    """The AveragePool of pooled_cnn(32) needs 249 pixels: 224 fails in the engine, 448 runs."""
    available = {b.name for b in unirun.backends() if b.available}
    if backend not in available:
        pytest.skip(f"the {backend} backend is not available here")
    with unirun.load(pooled_cnn(32), backend=backend, device="cpu") as model:
        p = plan(pooled_cnn(32))
        out = run_first(model, p)
        assert p.attempt == 1 and shapes(p)["x"] == (1, 3, 448, 448)
        assert out["logits"].shape == (1, 5) and np.isfinite(out["logits"]).all()


def test_an_engine_that_still_refuses_gets_the_first_error_and_the_flags() -> None:
    with unirun.load(pooled_cnn(200), backend="onnxruntime") as model:
        p = plan(pooled_cnn(200))
        with pytest.raises(InferenceError) as caught:
            run_first(model, p)
    message = str(caught.value)
    assert "AveragePool" in message  # the engine's own reason, from the first (224) attempt
    assert "the inputs were invented by unirun, since none were given: x float32[1, 3, 224, " in (
        message
    )
    assert "larger sizes failed too (x 1x3x448x448; x 1x3x896x896)" in message
    assert message.endswith("give real inputs: --input x=FILE.npy --shape x=1x3xHxW]")
    assert isinstance(caught.value.__cause__, InferenceError)


def test_real_inputs_are_never_grown_and_errors_pass_through_unchanged() -> None:
    with unirun.load(pooled_cnn(), backend="onnxruntime") as model:
        tiny = np.zeros((1, 3, 1, 1), np.float32)
        p = plan(pooled_cnn(), given={"x": tiny})
        with pytest.raises(InferenceError) as caught:
            run_first(model, p)
    assert "invented" not in str(caught.value) and p.attempt == 0


def test_an_input_too_large_to_invent_is_refused_before_allocating() -> None:
    spec = TensorSpec("x", DType.FLOAT32, ("n", 3, "h", "w"))
    bounds = {"x": ShapeRange.fixed((1024, 3, 1024, 1024))}  # 12 GiB of float32
    with pytest.raises(InputError, match=r"would take 12,884,901,888 bytes; give it \(--input x="):
        InputPlan([spec], shapes=bounds).feeds()
