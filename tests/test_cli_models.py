"""The commands that run a model, on models shaped like real ones (dynamic H/W with a pooling
floor, an LSTM behind If with a scalar sample rate and a carried state, int bytes through
Gather): they work with no flags, or fail saying what was invented and which flag fixes it.
A backend that fails gets its own row and the others go on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import unirun
from unirun.testing import byte_classifier, pooled_cnn, streaming_vad

MODELS = {"cnn": pooled_cnn, "vad": streaming_vad, "bytes": byte_classifier}
OPENVINO = any(b.name == "openvino" and b.available for b in unirun.backends())


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "PYTHONWARNINGS": "error"}
    return subprocess.run(
        [sys.executable, "-m", "unirun", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def ok(*args: str | Path) -> str:
    result = cli(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def save(model: Any, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_run_compare_bench_and_fastest_need_no_flags(name: str, tmp_path: Path) -> None:
    path = save(MODELS[name](), tmp_path / f"{name}.onnx")
    summary = json.loads(ok("run", path, "--json"))
    invented = {i["name"]: i for i in summary["invented"]}
    assert summary["outputs"] and set(invented) == set(summary["random_inputs"])
    compared = json.loads(ok("compare", path, "--json"))
    assert compared["ok"] and all(r["mismatched"] == 0 for r in compared["results"])
    (row,) = json.loads(
        ok("bench", path, "-b", "onnxruntime", "-n", "3", "--warmup", "1", "--json")
    )
    assert row["runs"] == 3 and row["inputs"] == "; ".join(
        f"{k} {v['dtype']}[{', '.join(map(str, v['shape']))}] ({v['how']})"
        for k, v in invented.items()
    )
    fastest = json.loads(ok("run", path, "-b", "fastest", "--json"))
    assert fastest["backend"] in fastest["selection"] and "reference" not in fastest["selection"]


def test_what_is_invented_is_representative(tmp_path: Path) -> None:
    cnn = json.loads(
        ok("run", save(pooled_cnn(), tmp_path / "cnn.onnx"), "-b", "onnxruntime", "--json")
    )
    assert cnn["invented"][0]["shape"] == [1, 3, 224, 224]
    vad = json.loads(
        ok("run", save(streaming_vad(), tmp_path / "vad.onnx"), "-b", "onnxruntime", "--json")
    )
    shapes = {i["name"]: (i["shape"], i["how"]) for i in vad["invented"]}
    assert shapes["state"][0] == [2, 1, 32] and shapes["input"][0] == [1, 256]
    assert shapes["sr"] == ([], "16000: the graph compares it with 16000")


def test_larger_sizes_are_tried_and_a_refusal_names_the_flag(tmp_path: Path) -> None:
    needs_256 = save(streaming_vad(pad=300), tmp_path / "vad300.onnx")  # reflect Pad 300
    summary = json.loads(ok("run", needs_256, "-b", "onnxruntime", "--json"))
    assert next(i for i in summary["invented"] if i["name"] == "input")["shape"] == [1, 1024]
    # the reference evaluator pads 256 samples by 300 (numpy wraps), ONNX Runtime refuses:
    # the two are compared at the smallest size both accept
    report = json.loads(ok("compare", needs_256, "-b", "onnxruntime,reference", "--json"))
    assert report["ok"] and {r["inputs"] for r in report["results"]} == {"input 1x1024"}
    never = save(pooled_cnn(200), tmp_path / "cnn200.onnx")  # needs 1593 pixels a side
    result = cli("run", never, "-b", "onnxruntime")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    error = result.stderr.replace("\n", "")
    assert (
        "the inputs were invented by unirun, since none were given: x float32[1, 3, 224, 224]"
        in (error)
    )
    assert "give real inputs: --input x=FILE.npy --shape x=1x3xHxW" in error
    assert "(InferenceError)" in error
    # …and the flag it names works
    fixed = json.loads(
        ok("run", never, "-b", "onnxruntime", "--shape", "x=1x3x1600x1600", "--json")
    )
    assert fixed["invented"][0]["shape"] == [1, 3, 1600, 1600]


def test_literal_values_choose_what_the_model_does(tmp_path: Path) -> None:
    path = save(streaming_vad(), tmp_path / "vad.onnx")
    outs = {}
    for rate in ("16000", "8000"):
        summary = json.loads(
            ok(
                "run",
                path,
                "-b",
                "onnxruntime",
                "-i",
                f"sr={rate}",
                "-o",
                tmp_path / f"{rate}.npz",
                "--json",
            )
        )
        assert "sr" not in summary["random_inputs"]
        with np.load(tmp_path / f"{rate}.npz") as saved:
            outs[rate] = saved["output"]
    assert not np.array_equal(outs["16000"], outs["8000"])  # the If took the other branch
    bad = cli("run", path, "-b", "onnxruntime", "-i", "sr=16000.5")
    assert bad.returncode == 1 and "input 'sr' takes int64; '16000.5'" in bad.stderr


def int64_relu(path: Path) -> Path:
    """Relu on int64: ONNX Runtime's CPU provider has no such kernel; the others run it."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="the_relu")],
        "int_relu",
        [helper.make_tensor_value_info("x", TensorProto.INT64, [4])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, [4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return save(model, path)


def test_compare_reports_a_failing_backend_in_its_row_and_goes_on(tmp_path: Path) -> None:
    path = int64_relu(tmp_path / "relu.onnx")
    names = "onnxruntime,openvino,reference" if OPENVINO else "onnxruntime,reference"
    result = cli("compare", path, "-b", names, "--json")
    assert result.returncode == 3, result.stderr
    rows = {r["backend"]: r for r in json.loads(result.stdout)["results"]}
    assert "UnsupportedModelError" in rows["onnxruntime"]["error"]
    if OPENVINO:
        assert rows["openvino"]["ok"] and rows["openvino"]["mismatched"] == 0
    table = cli("compare", path, "-b", names)
    assert table.returncode == 3
    assert "onnxruntime failed: ONNX Runtime has no kernel for Relu" in table.stdout
    assert "1 backend(s) failed: onnxruntime" in table.stdout
    base = cli("compare", path, "-b", names, "--baseline", "onnxruntime", "--json")
    rows = {r["backend"]: r for r in json.loads(base.stdout)["results"]}
    assert base.returncode == 3 and rows["reference"]["error"].startswith("not compared")


def test_bench_plot_keeps_a_failed_backend(tmp_path: Path) -> None:
    path = int64_relu(tmp_path / "relu.onnx")
    result = cli(
        "bench", path, "-b", "onnxruntime,reference", "-n", "3", "--plot", tmp_path / "b.png"
    )
    assert result.returncode == 1 and "chart saved" in result.stdout
    assert (tmp_path / "b.png").read_bytes().startswith(b"\x89PNG")
