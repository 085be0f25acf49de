"""Per-op numerics: Resize (opsets 10–19) and Upsample (7, 9)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from onnx import helper

import unirun_coreml as uc

F32 = np.float32
I64 = np.int64
X_SHAPE = (1, 2, 4, 6)


def _resize(
    harness: Any,
    x_shape: Any,
    scales: list[float] | None,
    sizes: list[int] | None,
    opset: int = 13,
    **attrs: Any,
) -> Any:
    inits: dict[str, np.ndarray] = {"roi": np.zeros(0, F32)}
    names = ["x", "roi", "", ""]
    if scales is not None:
        inits["scales"] = np.array(scales, F32)
        names[2] = "scales"
    if sizes is not None:
        inits["sizes"] = np.array(sizes, I64)
        names[3] = "sizes"
    node = helper.make_node(
        "Resize", [n for n in names if n] if sizes is None else names, ["y"], **attrs
    )
    return harness.model([node], {"x": (F32, x_shape)}, ["y"], inits, opset=opset)


NEAREST = [
    ("asymmetric", "floor", [1, 1, 2, 2]),
    ("asymmetric", "floor", [1, 1, 3, 2]),
    ("half_pixel", "round_prefer_floor", [1, 1, 2, 3]),
    ("pytorch_half_pixel", "round_prefer_ceil", [1, 1, 2, 2]),
    ("asymmetric", "round_prefer_floor", [1, 1, 2, 2]),
]


@pytest.mark.parametrize(("coordinates", "nearest", "scales"), NEAREST)
def test_resize_nearest(
    harness: Any, rng: np.random.Generator, coordinates: str, nearest: str, scales: list[float]
) -> None:
    model = _resize(
        harness,
        X_SHAPE,
        scales,
        None,
        mode="nearest",
        coordinate_transformation_mode=coordinates,
        nearest_mode=nearest,
    )
    harness.check(model, {"x": rng.standard_normal(X_SHAPE).astype(F32)})


def test_resize_nearest_sizes(harness: Any, rng: np.random.Generator) -> None:
    model = _resize(
        harness,
        X_SHAPE,
        None,
        [1, 2, 8, 18],
        mode="nearest",
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
    )
    harness.check(model, {"x": rng.standard_normal(X_SHAPE).astype(F32)})


LINEAR = [
    ("half_pixel", [1, 1, 2, 2], None),
    ("half_pixel", [1, 1, 0.5, 0.5], None),
    ("pytorch_half_pixel", [1, 1, 2, 1.5], None),
    ("align_corners", [1, 1, 2, 2], None),
    ("align_corners", None, [1, 2, 7, 5]),
    ("asymmetric", [1, 1, 2, 2], None),
    ("asymmetric", None, [1, 2, 8, 3]),
    ("half_pixel", None, [1, 2, 5, 9]),
]


@pytest.mark.parametrize(("coordinates", "scales", "sizes"), LINEAR)
def test_resize_linear(
    harness: Any,
    rng: np.random.Generator,
    coordinates: str,
    scales: list[float] | None,
    sizes: list[int] | None,
) -> None:
    model = _resize(
        harness, X_SHAPE, scales, sizes, mode="linear", coordinate_transformation_mode=coordinates
    )
    harness.check(model, {"x": rng.standard_normal(X_SHAPE).astype(F32)})


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_opset10(harness: Any, rng: np.random.Generator, mode: str) -> None:
    node = helper.make_node("Resize", ["x", "scales"], ["y"], mode=mode)
    model = harness.model(
        [node], {"x": (F32, X_SHAPE)}, ["y"], {"scales": np.array([1, 1, 2, 2], F32)}, opset=10
    )
    harness.check(model, {"x": rng.standard_normal(X_SHAPE).astype(F32)})


def test_resize_opset18_axes(harness: Any, rng: np.random.Generator) -> None:
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="linear", axes=[2, 3])
    model = harness.model(
        [node], {"x": (F32, X_SHAPE)}, ["y"], {"sizes": np.array([8, 12], I64)}, opset=18
    )
    harness.check(model, {"x": rng.standard_normal(X_SHAPE).astype(F32)})


@pytest.mark.parametrize(
    ("opset", "mode"), [(7, "nearest"), (7, "linear"), (9, "nearest"), (9, "linear")]
)
def test_upsample(harness: Any, rng: np.random.Generator, opset: int, mode: str) -> None:
    scales = [1.0, 1.0, 2.0, 3.0]
    if opset == 7:
        node = helper.make_node("Upsample", ["x"], ["y"], mode=mode, scales=scales)
        inits: dict[str, np.ndarray] = {}
    else:
        node = helper.make_node("Upsample", ["x", "s"], ["y"], mode=mode)
        inits = {"s": np.array(scales, F32)}
    model = harness.model([node], {"x": (F32, X_SHAPE)}, ["y"], inits, opset=opset)
    harness.check(model, {"x": rng.standard_normal(X_SHAPE).astype(F32)})


@pytest.mark.parametrize("coordinates", ["half_pixel", "align_corners", "asymmetric"])
def test_resize_dynamic_spatial(harness: Any, rng: np.random.Generator, coordinates: str) -> None:
    model = _resize(
        harness,
        (1, 2, "h", "w"),
        [1, 1, 2, 2],
        None,
        mode="linear",
        coordinate_transformation_mode=coordinates,
    )
    package = harness.package(model, shapes={"x": ((1, 2, 2, 2), (1, 2, 4, 4), (1, 2, 8, 8))})
    for shape in [(1, 2, 3, 5), (1, 2, 8, 2)]:
        x = rng.standard_normal(shape).astype(F32)
        np.testing.assert_allclose(
            uc.evaluate(package, {"x": x})["y"],
            harness.ort(model, {"x": x})["y"],
            rtol=1e-5,
            atol=1e-6,
        )


def test_resize_refusals(harness: Any) -> None:
    cubic = _resize(harness, X_SHAPE, [1, 1, 2, 2], None, mode="cubic")
    with pytest.raises(uc.UnsupportedOpsError, match="cubic"):
        uc.translate(cubic)
    fractional = _resize(harness, X_SHAPE, [1, 1, 1.5, 1.5], None, mode="nearest")
    with pytest.raises(uc.TranslationError, match="pixel repetition"):
        uc.translate(fractional)
    channels = _resize(harness, X_SHAPE, [1, 2, 2, 2], None, mode="nearest")
    with pytest.raises(uc.TranslationError, match="last two axes"):
        uc.translate(channels)
