"""``-p int8 --calibration DIR`` on ``unirun compile`` and ``unirun compare``, as a user runs
them (a subprocess per command, ONNX Runtime for int8, the reference backend as the fp32
baseline)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from unirun.testing import outlier_inputs, outlier_mlp, resnet_like

from .test_cli import cli, ok, one_line_error

pytest.importorskip("onnxruntime.quantization", reason="int8 needs onnxruntime's quantization")


def _samples(directory: Path, feeds: list[dict[str, Any]]) -> Path:
    directory.mkdir()
    for i, feed in enumerate(feeds):
        np.savez(directory / f"{i:03d}.npz", **feed)
    return directory


@pytest.fixture
def cnn(tmp_path: Path) -> tuple[Path, Path]:
    model = tmp_path / "cnn.onnx"
    onnx.save(resnet_like(width=16, size=16, classes=10), str(model))
    rng = np.random.default_rng(0)
    feeds = [{"image": rng.standard_normal((2, 3, 16, 16)).astype(np.float32)} for _ in range(16)]
    return model, _samples(tmp_path / "calibration", feeds)


@pytest.mark.slow
def test_compile_int8_with_a_calibration_directory(cnn: tuple[Path, Path], tmp_path: Path) -> None:
    model, data = cnn
    out = json.loads(
        ok(
            "compile",
            model,
            "-b",
            "onnxruntime",
            "-p",
            "int8",
            "--calibration",
            data,
            "-o",
            tmp_path / "q",
            "--json",
        )
    )
    assert out["precision"] == "int8"
    record = out["quantization"]
    assert record["form"] in ("qdq-static", "dynamic") and record["calibration_samples"] == 13
    saved = json.loads((tmp_path / "q" / "manifest.json").read_text(encoding="utf-8"))
    assert saved["extra"]["quantization"]["calibration_sha256"] == record["calibration_sha256"]
    text = ok(
        "compile",
        model,
        "-b",
        "onnxruntime",
        "-p",
        "int8",
        "--calibration",
        data,
        "-o",
        tmp_path / "q2",
    )
    assert "int8 form " in text and "mean cosine" in text and "held-back samples" in text


@pytest.mark.slow
def test_compile_int8_problems_are_one_line_errors(cnn: tuple[Path, Path], tmp_path: Path) -> None:
    model, data = cnn
    one_line_error(
        cli("compile", model, "-b", "onnxruntime", "-p", "int8", "-o", tmp_path / "a"),
        1,
        "needs calibration= data",
    )
    np.savez(data / "000.npz", picture=np.zeros((2, 3, 16, 16), np.float32))
    one_line_error(
        cli(
            "compile",
            model,
            "-b",
            "onnxruntime",
            "-p",
            "int8",
            "--calibration",
            data,
            "-o",
            tmp_path / "b",
        ),
        1,
        "calibration sample 000.npz: missing input 'image'",
    )


@pytest.mark.slow
def test_compare_int8_against_fp32_reports_cosine_and_top1(cnn: tuple[Path, Path]) -> None:
    model, data = cnn
    out = json.loads(
        ok(
            "compare",
            model,
            "-b",
            "onnxruntime,reference",
            "-p",
            "int8",
            "--calibration",
            data,
            "--samples",
            "3",
            "--json",
        )
    )
    (report,) = out["results"]
    assert out["ok"] and out["baseline"] == "reference" and report["backend"] == "onnxruntime"
    assert report["cosine"] > 0.999 and report["max_abs_over_max_ref"] < 0.05
    assert 0.0 <= report["top1"] <= 1.0
    text = ok("compare", model, "-b", "onnxruntime,reference", "-p", "int8", "--calibration", data)
    assert "int8 bound: mean cosine ≥ 0.999" in text and "cosine" in text and "top-1" in text


@pytest.mark.slow
def test_compare_int8_fails_a_model_outside_the_bound(tmp_path: Path) -> None:
    model = tmp_path / "outlier.onnx"
    onnx.save(outlier_mlp(), str(model))
    data = _samples(tmp_path / "calibration", outlier_inputs(16))
    result = cli(
        "compare",
        model,
        "-b",
        "onnxruntime,reference",
        "-p",
        "int8",
        "--calibration",
        data,
        "-i",
        data / "015.npz",
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "FAIL" in result.stdout and "fails the int8 checks" in result.stderr
