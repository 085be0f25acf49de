"""The command line, driven as a user drives it: a subprocess per command, real models, real
engines (ONNX Runtime and the built-in reference backend), assertions on output and exit code."""

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
from unirun.cli._agree import TOLERANCES

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "examples" / "models"
CNN = MODELS / "tiny_cnn.onnx"
MLP = MODELS / "mlp.onnx"
HAS_ORT_CUDA = any(d.device.kind == "cuda" for b in unirun.backends() for d in b.devices)


def cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m unirun ARGS`` (the console script's code) in a wide, non-colour terminal."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "PYTHONWARNINGS": "error"}
    return subprocess.run(
        [sys.executable, "-m", "unirun", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


def ok(*args: str | Path, cwd: Path | None = None) -> str:
    result = cli(*args, cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def one_line_error(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert text in result.stderr


def _save(model: Any, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def random_model(path: Path) -> Path:
    """``y = x + RandomUniformLike(x)``: every engine draws its own random numbers, so two
    backends can never agree on ``y`` (except with a tolerance wider than the noise)."""
    graph = helper.make_graph(
        [
            helper.make_node("RandomUniformLike", ["x"], ["noise"], seed=1.0, name="noise"),
            helper.make_node("Add", ["x", "noise"], ["y"], name="add"),
        ],
        "noisy",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return _save(model, path)


def int64_relu_model(path: Path) -> Path:
    """Relu on int64: valid ONNX, but ONNX Runtime's CPU provider has no such kernel."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="the_relu")],
        "int_relu",
        [helper.make_tensor_value_info("x", TensorProto.INT64, ["n"])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, ["n"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return _save(model, path)


# -- the app as a whole ---------------------------------------------------------------------


def test_help_lists_every_command_and_version_prints() -> None:
    out = ok("--help")
    for command in ("backends", "doctor", "inspect", "compile", "run", "bench", "compare", "cache"):
        assert command in out
    assert ok("--version").strip() == f"unirun {unirun.__version__}"


def test_the_console_script_is_installed_and_works() -> None:
    script = Path(sys.executable).with_name("unirun")
    if not script.exists():
        pytest.skip(f"no console script next to {sys.executable} (not an installed checkout)")
    result = subprocess.run([script, "backends", "--json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    by_name = {b["name"]: b for b in json.loads(result.stdout)}
    assert (
        by_name["onnxruntime"]["available"]
        and by_name["onnxruntime"]["api_version"] == unirun.API_VERSION
    )
    assert by_name["reference"]["devices"][0]["device"] == "cpu"


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["frobnicate"], "No such command"),
        (["run", str(CNN), "--bogus"], "No such option: --bogus"),
        (["run", "missing.onnx"], "does not exist"),
        (["run", str(CNN), "--device", "tpu"], "unknown device kind 'tpu'"),
        (["run", str(CNN), "--precision", "fp8"], "choose one of fp32, fp16, bf16"),
        (["run", str(CNN), "--shape", "image=abc"], "write NAME=1x3x224x224"),
        (["run", str(CNN), "--input", "image.npy"], "write NAME=FILE.npy, NAME=VALUE or FILE.npz"),
        (["compile", str(CNN)], "Missing option '--output'"),
        (["compare", str(CNN), "-b", "onnxruntime"], "at least two backends"),
        (["compare", str(CNN), "--baseline", "openvino"], "is not one of the backends"),
        (["bench", str(CNN), "-b", "onnxruntime,onnxruntime"], "names a backend twice"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v)[:40],
)
def test_bad_command_lines_exit_2_without_a_traceback(args: list[str], text: str) -> None:
    one_line_error(cli(*args), 2, text)


def test_unirun_errors_are_one_line_with_exit_1_and_debug_shows_the_traceback() -> None:
    result = cli("run", CNN, "-b", "nosuch")
    one_line_error(result, 1, "error: no backend named 'nosuch' is installed")
    assert len(result.stderr.strip().splitlines()) == 1
    debug = cli("--debug", "run", CNN, "-b", "nosuch")
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert "BackendNotFoundError" in debug.stderr


def test_importing_unirun_and_its_cli_imports_nothing_heavy() -> None:
    code = (
        "import sys, unirun; a = set(sys.modules); import unirun.cli; b = set(sys.modules); "
        "heavy = ('typer', 'rich', 'matplotlib', 'onnxruntime', 'openvino', 'coremltools'); "
        "print([m for m in heavy if m in a], [m for m in ('matplotlib', 'onnxruntime') if m in b])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] []"


# -- backends and doctor --------------------------------------------------------------------


def test_backends_table_names_versions_and_install_commands() -> None:
    out = ok("backends")
    assert "onnxruntime" in out and "available" in out
    # installed: the reason names the extra and the repair command; absent: the install command
    assert "pip install 'unirun-tensorrt[cu13]'" in out or "pip install -U unirun-tensorrt" in out


def test_doctor_passes_for_a_setup_that_works() -> None:
    out = ok("doctor", "-b", "onnxruntime", "-d", "cpu")
    assert "onnxruntime on cpu" in out and "no problems found" in out
    report = json.loads(ok("doctor", "--json"))
    assert report["ok"] is True
    assert any(c["name"] == "compile cache" and c["status"] == "ok" for c in report["checks"])


@pytest.mark.skipif(HAS_ORT_CUDA, reason="ONNX Runtime can use CUDA here")
def test_doctor_fails_with_exit_3_for_a_setup_that_cannot_work() -> None:
    result = cli("doctor", "-b", "onnxruntime", "-d", "cuda")
    assert result.returncode == 3, result.stdout
    assert "no cuda device is available to onnxruntime" in result.stdout
    assert "onnxruntime-gpu" in result.stdout  # the fix is named


def test_doctor_fails_for_a_backend_that_is_not_there() -> None:
    if "tensorrt" in {b.name for b in unirun.backends() if b.available}:
        pytest.skip("TensorRT is available here")
    result = cli("doctor", "-b", "tensorrt")
    assert result.returncode == 3
    assert "unirun-tensorrt" in result.stdout
    unknown = cli("doctor", "-b", "nosuch")
    assert unknown.returncode == 3 and "unknown backend" in unknown.stdout


# -- inspect --------------------------------------------------------------------------------


def test_inspect_reports_structure_and_which_backend_takes_it() -> None:
    out = ok("inspect", CNN)
    for text in ("IR 8", "ai.onnx 17", "unirun.testing", "[N, 3, 32, 32]", "[N, 10]", "Conv 2"):
        assert text in out
    report = json.loads(ok("inspect", CNN, "--json"))
    proto = onnx.load(str(CNN))
    assert report["parameters"]["count"] == sum(
        int(np.prod(t.dims)) for t in proto.graph.initializer
    )
    assert report["parameters"]["bytes"] == 4 * report["parameters"]["count"]
    assert sum(report["ops"].values()) == len(proto.graph.node) == report["nodes"]
    assert report["inputs"] == [{"name": "image", "dtype": "float32", "shape": ["N", 3, 32, 32]}]
    verdicts = {v["backend"]: v["verdict"] for v in report["backends"]}
    assert verdicts["onnxruntime"] == "yes"
    assert verdicts["reference"] == "unknown"  # it does not implement the optional hook


def test_inspect_names_the_nodes_a_backend_cannot_run(tmp_path: Path) -> None:
    path = int64_relu_model(tmp_path / "int_relu.onnx")
    report = json.loads(ok("inspect", path, "--json"))
    ort = next(v for v in report["backends"] if v["backend"] == "onnxruntime")
    assert ort["verdict"] == "no"
    assert ort["unsupported"] == [{"node": "the_relu", "op": "Relu"}]
    assert "Relu (the_relu)" in ok("inspect", path)
    # …and ONNX Runtime really refuses it: the check is not a guess
    one_line_error(cli("run", path, "-b", "onnxruntime"), 1, "UnsupportedModelError")


def test_inspect_one_backend_lists_what_the_core_ml_translator_cannot_lower(
    tmp_path: Path,
) -> None:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["r"], name="relu"),
            helper.make_node("NonMaxSuppression", ["boxes", "r"], ["keep"], name="nms"),
        ],
        "nms",
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 4, 4]),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4]),
        ],
        [helper.make_tensor_value_info("keep", TensorProto.INT64, [None, 3])],
    )
    path = tmp_path / "nms.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    report = json.loads(ok("inspect", path, "-b", "coreml", "--json"))
    assert [v["backend"] for v in report["backends"]] == ["coreml"]  # compile-only here is fine
    assert report["backends"][0]["unsupported"] == [{"node": "nms", "op": "NonMaxSuppression"}]
    assert "NonMaxSuppression (nms)" in ok("inspect", path, "--backend", "coreml")
    one_line_error(cli("inspect", path, "-b", "nosuch"), 1, "BackendNotFoundError")


def test_inspect_lists_external_data_files(tmp_path: Path) -> None:
    model = onnx.load(str(CNN))
    onnx.save(
        model,
        str(tmp_path / "big.onnx"),
        save_as_external_data=True,
        location="big.weights",
        size_threshold=0,
    )
    report = json.loads(ok("inspect", tmp_path / "big.onnx", "--json", "--no-backends"))
    assert report["external_data"] == [
        {"file": "big.weights", "bytes": (tmp_path / "big.weights").stat().st_size}
    ]
    assert report["parameters"]["count"] == 1594 and "backends" not in report


# -- compile, run, inspect an artifact ------------------------------------------------------


def test_compile_then_run_and_inspect_the_artifact(tmp_path: Path) -> None:
    art = tmp_path / "cnn.unirun"
    out = ok(
        "compile", CNN, "-b", "onnxruntime", "-d", "cpu", "--shape", "image=2x3x32x32", "-o", art
    )
    assert "compiled tiny_cnn.onnx with onnxruntime for cpu" in out
    manifest = json.loads((art / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["backend"] == "onnxruntime"
    assert manifest["options"]["shapes"]["image"]["min"] == [2, 3, 32, 32]

    again = cli("compile", CNN, "-b", "onnxruntime", "-o", art)
    one_line_error(again, 1, "pass --force")
    ok("compile", CNN, "-b", "onnxruntime", "-o", art, "--force", "-O", "inter_op_threads=2")

    assert "backend onnxruntime" in ok("inspect", art)
    image = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "image.npy", image)
    ok("run", art, "--input", f"image={tmp_path / 'image.npy'}", "-o", tmp_path / "out.npz")
    with np.load(tmp_path / "out.npz") as saved, unirun.load(CNN, backend="reference") as ref:
        np.testing.assert_allclose(saved["logits"], ref(image)["logits"], rtol=1e-4, atol=1e-5)
    one_line_error(cli("run", art, "-p", "fp16"), 2, "fixed when it is compiled")


def test_compile_refuses_what_the_backend_cannot_do() -> None:
    result = cli("compile", CNN, "-b", "onnxruntime", "-p", "bf16", "-o", "never.unirun")
    one_line_error(result, 1, "does not support precision 'bf16'")
    result = cli("compile", CNN, "-b", "onnxruntime", "-O", "nonsense=1", "-o", "never.unirun")
    one_line_error(result, 1, "OptionsError")
    assert not Path("never.unirun").exists()


def test_run_prints_outputs_and_reads_npz_inputs(tmp_path: Path) -> None:
    out = ok("run", MLP, "--seed", "3")
    assert "onnxruntime on cpu · fp32" in out
    assert "invented inputs: x float32[1, 16] (random normal)" in out
    assert "probs" in out and "float32" in out
    x = np.full((3, 16), 0.5, np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    summary = json.loads(ok("run", MLP, "-i", tmp_path / "in.npz", "--json"))
    assert summary["random_inputs"] == []
    assert summary["outputs"] == [{"name": "probs", "dtype": "float32", "shape": [3, 4]}]


def test_run_with_the_wrong_input_names_the_input(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((1, 16), np.int64))
    result = cli("run", MLP, "-i", f"x={tmp_path / 'x.npy'}")
    one_line_error(result, 1, "input 'x' expects float32")
    np.save(tmp_path / "y.npy", np.zeros((1, 16), np.float32))
    one_line_error(cli("run", MLP, "-i", f"nope={tmp_path / 'y.npy'}"), 1, "'nope'")
    one_line_error(cli("run", MLP, "-i", "x=missing.npy"), 2, "cannot read missing.npy")


# -- bench ----------------------------------------------------------------------------------


def test_bench_reports_percentiles_and_throughput_per_backend(tmp_path: Path) -> None:
    rows = json.loads(
        ok("bench", MLP, "-b", "onnxruntime,reference", "-n", "20", "--warmup", "2", "--json")
    )
    assert [r["backend"] for r in rows] == ["onnxruntime", "reference"]
    for r in rows:
        assert r["runs"] == 20 and r["device"] == "cpu"
        assert 0 < r["min_ms"] <= r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert r["throughput_per_s"] > 0
    assert min(r["relative"] for r in rows) == 1.0
    out = ok("bench", MLP, "-b", "onnxruntime", "-n", "5", "-c", "2", "--plot", tmp_path / "b.png")
    assert "p50" in out and "inf/s ×2" in out and "chart saved" in out
    png = (tmp_path / "b.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000


def test_bench_goes_on_past_a_failing_backend_and_exits_1() -> None:
    result = cli("bench", MLP, "-b", "onnxruntime,nosuch", "-n", "3", "--json")
    assert result.returncode == 1
    rows = json.loads(result.stdout)
    assert rows[0]["runs"] == 3 and "no backend named 'nosuch'" in rows[1]["error"]


# -- compare --------------------------------------------------------------------------------


def test_compare_passes_when_engines_agree() -> None:
    out = ok("compare", CNN, "-b", "onnxruntime,reference")
    assert "baseline reference" in out and "fp32 tolerances" in out and "PASS" in out
    report = json.loads(ok("compare", MLP, "--samples", "3", "--json"))
    (row,) = report["results"]
    assert report["ok"] and row["backend"] == "onnxruntime" and row["output"] == "probs"
    assert row["total"] == 3 * 4 and row["mismatched"] == 0 and row["max_abs"] < 1e-5


def test_compare_fails_with_exit_3_when_outputs_disagree(tmp_path: Path) -> None:
    # Forced honestly: the model adds random noise (RandomUniformLike), which ONNX Runtime and
    # the numpy reference draw from different generators, so the outputs really differ.
    path = random_model(tmp_path / "noisy.onnx")
    result = cli("compare", path, "-b", "onnxruntime,reference")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "FAIL" in result.stdout and "onnxruntime:y" in result.stdout
    report = json.loads(cli("compare", path, "--json").stdout)
    (row,) = report["results"]
    assert not report["ok"] and row["mismatched"] > 0 and 0 < row["max_abs"] < 1
    # uniform noise lies in [0, 1): a tolerance wider than that passes, so the failure above is
    # about the values, not a crash
    ok("compare", path, "--rtol", "0", "--atol", "1")


OPENVINO = next((b for b in unirun.backends() if b.name == "openvino" and b.available), None)
OPENVINO_FP16 = bool(
    OPENVINO and OPENVINO.capabilities and "fp16" in OPENVINO.capabilities.precisions
)


@pytest.mark.skipif(not OPENVINO_FP16, reason="needs the OpenVINO backend with fp16")
def test_compare_tolerances_follow_the_precision_the_engine_computed() -> None:
    # Ask the engine what it really computes in on this CPU (fp16 where the CPU has fp16
    # units, fp32 where OpenVINO substitutes it) and expect exactly that precision's rule.
    with unirun.load(CNN, backend="openvino", device="cpu", precision="fp16") as model:
        computed = model.precision
    args = ("compare", CNN, "-b", "openvino,reference", "-d", "cpu", "-p", "fp16", "--json")
    report = json.loads(ok(*args))
    (row,) = report["results"]
    assert report["ok"] and (row["precision"], row["requested_precision"]) == (computed, "fp16")
    rtol, factor = TOLERANCES[computed]
    assert row["rtol"] == rtol and row["atol"] == pytest.approx(factor * row["scale"])
    assert row["max_abs"] <= row["atol"] + rtol * row["scale"]
    if row["max_abs"] > 0:  # a tolerance tighter than the real error fails, whatever it is
        tight = cli(*args, "--rtol", "0", "--atol", f"{row['max_abs'] / 2:.3g}")
        assert tight.returncode == 3 and json.loads(tight.stdout)["ok"] is False


@pytest.mark.skipif(OPENVINO is None, reason="needs the OpenVINO backend")
def test_doctor_openvino_gpu_fails_without_an_intel_gpu() -> None:
    assert OPENVINO is not None
    if any(d.device.kind == "gpu" for d in OPENVINO.devices):
        pytest.skip("this machine has an OpenVINO GPU")
    result = cli("doctor", "-b", "openvino", "-d", "gpu")
    assert result.returncode == 3 and "no gpu device is available to openvino" in result.stdout


def test_compare_reports_a_precision_the_backend_lacks_in_its_row() -> None:
    result = cli("compare", CNN, "-b", "onnxruntime,reference", "-p", "bf16", "--json")
    assert result.returncode == 3, result.stderr
    (row,) = json.loads(result.stdout)["results"]
    assert row["backend"] == "onnxruntime" and "does not support precision 'bf16'" in row["error"]


# -- cache ----------------------------------------------------------------------------------


def test_cache_info_and_clear(tmp_path: Path) -> None:
    ok("run", MLP, "-b", "onnxruntime")
    ok("run", MLP, "-b", "reference")
    info = json.loads(ok("cache", "info", "--json"))
    assert info["location"] == os.environ["UNIRUN_CACHE_DIR"]
    assert info["entries"] == 2 and info["bytes"] > 0
    assert set(info["backends"]) == {"onnxruntime", "reference"}
    assert "removed 1 reference entry" in ok("cache", "clear", "-b", "reference")
    assert "onnxruntime" in ok("cache", "info")
    assert "removed 1 entry" in ok("cache", "clear")
    assert json.loads(ok("cache", "info", "--json"))["entries"] == 0
