"""Shared test harness: build small ONNX models, run them in ONNX Runtime and through
translate → save → reload → numpy evaluation, and compare."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

import unirun_coreml as uc

RTOL = 1e-5  # fp32 relative error bound of the per-op and end-to-end checks


@dataclass
class Report:
    max_abs: float
    max_rel: float
    ok: bool
    detail: str


def compare_arrays(actual: np.ndarray, expected: np.ndarray, rtol: float = RTOL) -> Report:
    if actual.shape != expected.shape:
        return Report(np.inf, np.inf, False, f"shape {actual.shape} != {expected.shape}")
    if expected.dtype.kind in "biu":
        same = np.array_equal(actual.astype(expected.dtype), expected)
        return Report(0.0 if same else np.inf, 0.0 if same else np.inf, same, "integer values")
    a, b = actual.astype(np.float64), expected.astype(np.float64)
    if a.size == 0:
        return Report(0.0, 0.0, True, "empty")
    scale = max(float(np.max(np.abs(b))), 1e-30)
    # Elementwise relative error, with an absolute floor at the tensor's scale for values
    # near zero (sums with cancellation carry rounding error of the summands, not the sum).
    atol = rtol * 0.1 * max(scale, 1.0)
    with np.errstate(invalid="ignore"):  # inf - inf where both are the same infinity
        diff = np.where(a == b, 0.0, np.abs(a - b))
    rel = diff / (np.abs(b) + atol / rtol)
    ok = bool(np.all(diff <= rtol * np.abs(b) + atol)) and bool(
        np.all(np.isfinite(a) == np.isfinite(b))
    )
    return Report(float(diff.max()), float(rel.max()), ok, f"scale {scale:.3g}")


class Harness:
    counter = itertools.count()
    RTOL = RTOL
    compare_arrays = staticmethod(compare_arrays)

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    @staticmethod
    def model(
        nodes: Sequence[onnx.NodeProto],
        inputs: Mapping[str, tuple[Any, Sequence[int | str | None]]],
        outputs: Mapping[str, Any] | Sequence[str],
        initializers: Mapping[str, np.ndarray] | None = None,
        opset: int = 17,
    ) -> onnx.ModelProto:
        def info(name: str, dtype: Any, shape: Sequence[int | str | None] | None) -> Any:
            elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
            return helper.make_tensor_value_info(name, elem, shape)

        outs = outputs if isinstance(outputs, Mapping) else dict.fromkeys(outputs, np.float32)
        graph = helper.make_graph(
            list(nodes),
            "g",
            [info(n, d, s) for n, (d, s) in inputs.items()],
            [info(n, d, None) for n, d in outs.items()],
            [numpy_helper.from_array(np.asarray(v), n) for n, v in (initializers or {}).items()],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 8
        return model

    @staticmethod
    def ort(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(names, dict(feeds)), strict=True))

    def package(self, model: onnx.ModelProto, **kwargs: Any) -> Path:
        result = uc.translate(model, **kwargs)
        return result.save(self.tmp_path / f"m{next(self.counter)}.mlpackage")

    def coreml(
        self, model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], **kwargs: Any
    ) -> dict[str, np.ndarray]:
        return uc.evaluate(self.package(model, **kwargs), feeds)

    def compare(
        self,
        model: onnx.ModelProto,
        feeds: Mapping[str, np.ndarray],
        rtol: float = RTOL,
        **kwargs: Any,
    ) -> dict[str, Report]:
        expected = self.ort(model, feeds)
        actual = self.coreml(model, feeds, **kwargs)
        assert set(actual) == set(expected), (sorted(actual), sorted(expected))
        return {k: compare_arrays(actual[k], expected[k], rtol) for k in expected}

    def check(
        self,
        model: onnx.ModelProto,
        feeds: Mapping[str, np.ndarray],
        rtol: float = RTOL,
        **kwargs: Any,
    ) -> dict[str, Report]:
        reports = self.compare(model, feeds, rtol, **kwargs)
        bad = {k: r for k, r in reports.items() if not r.ok}
        assert not bad, f"Core ML program differs from ONNX Runtime: {bad}"
        if kwargs.get("precision", "fp32") == "fp32":
            ERRORS.extend(r.max_rel for r in reports.values())
        return reports


ERRORS: list[float] = []


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if ERRORS:
        terminalreporter.write_line(
            f"unirun-coreml: {len(ERRORS)} fp32 comparisons, worst relative error {max(ERRORS):.3g}"
        )
