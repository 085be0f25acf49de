"""Models shaped like real ones, ONNX Runtime's own log, and a full disk, against the real
onnxruntime."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import unirun
from unirun import CompileError
from unirun.artifact import manifest_digest
from unirun.testing.models import streaming_vad
from unirun.testing.onnx_backend import node_cases

Array = np.ndarray[Any, Any]
LOG = "unirun.onnxruntime"
#: What ONNX Runtime's platform logger writes: colour codes, "[W:onnxruntime:" prefixes.
RAW_ENGINE_LOG = re.compile(r"\x1b\[|\[[VIWEF]:onnxruntime:|onnxruntime_src|\.cc:\d+")
FIXED = {"input": (1, 512), "state": (2, 1, 16)}


def _chunks(count: int, size: int) -> list[Array]:
    rng = np.random.default_rng(size)
    return [rng.standard_normal((1, size)).astype(np.float32) for _ in range(count)]


def _stream(chunks: list[Array], sr: int, run: Any) -> Array:
    """Probabilities for consecutive chunks, each call's ``stateN`` fed to the next."""
    state = np.zeros((2, 1, 16), np.float32)
    probs = []
    for chunk in chunks:
        out = run({"input": chunk, "state": state, "sr": np.array(sr, np.int64)})
        probs.append(out["output"])
        state = out["stateN"]
    return np.concatenate(probs)


def _native(model: Any) -> Any:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return lambda feeds: dict(zip(names, session.run(None, feeds), strict=True))


def test_streaming_lstm_model_matches_onnxruntime_at_both_sample_rates() -> None:
    model = streaming_vad()
    native = _native(model)
    with unirun.load(model, backend="onnxruntime") as m:
        assert [(s.name, s.shape) for s in m.inputs] == [
            ("input", ("batch", "samples")),
            ("state", (2, "batch", 16)),
            ("sr", ()),
        ]
        for sr, size in [(16000, 512), (8000, 256)]:
            chunks = _chunks(5, size)
            np.testing.assert_array_equal(
                _stream(chunks, sr, m), _stream(chunks, sr, native), err_msg=str(sr)
            )


def test_fixed_shapes_never_break_a_model_onnxruntime_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Written into the graph, (1, 512) trips ONNX Runtime's shape inference inside the 8 kHz
    branch, which never runs at that size: unirun builds the graph as it is, says so naming
    the declared shapes, and still checks them."""
    model = streaming_vad()
    with caplog.at_level(logging.WARNING, LOG):
        m = unirun.load(model, backend="onnxruntime", shapes=FIXED, cache=False)
    with m:
        chunks = _chunks(4, 512)
        np.testing.assert_array_equal(
            _stream(chunks, 16000, m), _stream(chunks, 16000, _native(model))
        )
        with pytest.raises(unirun.InputError, match=r"'input' .*got shape \(1, 256\)"):
            _stream(_chunks(1, 256), 8000, m)
    (record,) = [r for r in caplog.records if r.name == LOG]
    text = record.getMessage()
    assert "declared fixed input shapes input=(1, 512), state=(2, 1, 16)" in text
    assert "ShapeInferenceError" in text and "built it with the graph's own dimensions" in text


def test_fixed_shapes_are_written_in_where_onnxruntime_takes_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from unirun.testing import conv_net

    with caplog.at_level(logging.WARNING, LOG):
        m = unirun.load(conv_net(), backend="onnxruntime", shapes={"image": (2, 3, 32, 32)})
    with m:
        assert m.inputs[0].shape == (2, 3, 32, 32) and m.outputs[0].shape == (2, 10)
    assert not caplog.records


def _unused_initializer() -> Any:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        "unused",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.ones(3, np.float32), "never_used")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_engine_log_goes_through_logging_not_stderr(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """ONNX Runtime warns about the unused initializer; by default that stays out of sight,
    and with the logger at INFO it arrives as one clean record."""
    with unirun.load(_unused_initializer(), backend="onnxruntime", cache=False) as m:
        m(np.ones(2, np.float32))
    assert not [r for r in caplog.records if r.name == LOG and r.levelno >= logging.WARNING]
    with caplog.at_level(logging.INFO, LOG):
        m = unirun.load(_unused_initializer(), backend="onnxruntime", cache=False)
    with m:
        m(np.ones(2, np.float32))
    notes = [r for r in caplog.records if r.name == LOG and "never_used" in r.getMessage()]
    assert notes and all(r.levelno == logging.INFO for r in notes)
    assert not any(RAW_ENGINE_LOG.search(r.getMessage()) for r in notes)
    assert not RAW_ENGINE_LOG.search(capfd.readouterr().err)


def test_engine_errors_reach_the_user_once_and_clean(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """ONNX Runtime logs an ERROR record (coloured, with the C++ file) and then raises; the
    user gets one error without C++ locations, and nothing on stderr."""
    (case,) = node_cases("^test_simple_rnn_batchwise$")
    with caplog.at_level(logging.DEBUG, LOG), pytest.raises(CompileError) as info:
        unirun.load(case.model, backend="onnxruntime", cache=False)
    text = str(info.value)
    assert "Batchwise recurrent operations (layout == 1) are not supported" in text
    assert not RAW_ENGINE_LOG.search(text) and "onnxruntime::" not in text
    held = [r for r in caplog.records if r.name == LOG]
    assert held and all(r.levelno == logging.DEBUG for r in held)  # the error says it all
    assert not RAW_ENGINE_LOG.search(capfd.readouterr().err)


def test_run_time_failures_name_no_cpp_source(capfd: pytest.CaptureFixture[str]) -> None:
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape")],
        "reshape",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.array([2, 3], np.int64), "shape")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    m = unirun.load(model, backend="onnxruntime", cache=False)
    with m, pytest.raises(unirun.InferenceError) as info:
        m(np.zeros(5, np.float32))
    text = str(info.value)
    assert "The input tensor cannot be reshaped" in text
    assert not RAW_ENGINE_LOG.search(text) and "onnxruntime::" not in text
    assert not RAW_ENGINE_LOG.search(capfd.readouterr().err)


def test_model_precision_is_fp32() -> None:
    """ONNX Runtime computes in the graph's own types; an fp32 build reports fp32."""
    with unirun.load(_unused_initializer(), backend="onnxruntime", cache=False) as m:
        assert m.precision == "fp32" and m.artifact.manifest.computed_precision is None


_COMPILE = """
import resource, sys, unirun
from unirun.testing import mlp
limit = int(sys.argv[1])
if limit:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
try:  # 1 MiB of weights
    unirun.compile(mlp(features=512, hidden=512), backend="onnxruntime", cache=sys.argv[2])
except unirun.UnirunError as exc:
    print(type(exc).__name__ + ": " + str(exc))
    sys.exit(3)
"""


def _compile_elsewhere(
    tmp_path: Path, limit: int, cache: Path, prefix: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "compile.py"
    script.write_text(_COMPILE)
    command = [*(prefix or []), sys.executable, str(script), str(limit), str(cache)]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)


def test_a_file_size_limit_during_compile_says_there_is_no_space(tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes writes past 256 KiB fail (EFBIG) as a full disk does (ENOSPC);
    ONNX Runtime itself only says "Protobuf serialization failed"."""
    done = _compile_elsewhere(tmp_path, 256 * 1024, tmp_path / "cache")
    assert done.returncode == 3, done.stderr[-2000:]
    assert done.stdout.startswith("CompileError: no space left for the file"), done.stdout
    assert "ulimit -f" in done.stdout and "Protobuf" not in done.stdout


def test_a_full_disk_during_compile_says_no_space_left_on_device(tmp_path: Path) -> None:
    """A 192 KiB tmpfs in a user and mount namespace (no root needed) holds the cache."""
    unshare, mount = shutil.which("unshare"), tmp_path / "small"
    mount.mkdir()
    script = f'mount -t tmpfs -o size=192k tmpfs "{mount}" && exec "$0" "$@"'
    prefix = [unshare or "unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script]
    if unshare is None or subprocess.run([*prefix, "true"], check=False).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here: user namespaces are not allowed")
    done = _compile_elsewhere(tmp_path, 0, mount / "cache", prefix)
    assert done.returncode == 3, done.stderr[-2000:]
    assert done.stdout.startswith("CompileError: no space left on device"), done.stdout
    assert "UNIRUN_CACHE_DIR" in done.stdout and "Protobuf" not in done.stdout


def test_outputs_follow_the_sessions_names_not_the_manifest_order(tmp_path: Path) -> None:
    """Outputs come from the session by name: a manifest listing them in another order cannot
    swap the answers."""
    import json

    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["a"], name="relu"),
            helper.make_node("Neg", ["x"], ["b"], name="neg"),
        ],
        "two",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [3]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [3]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = unirun.compile(model, backend="onnxruntime", cache=False).save(tmp_path / "two")
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    manifest["outputs"].reverse()
    manifest["sha256"] = manifest_digest(manifest)  # resealed, as a forger would
    (path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    x = np.array([-1.0, 2.0, -3.0], np.float32)
    with unirun.load(path) as m:
        assert [s.name for s in m.artifact.outputs] == ["b", "a"]
        out = m(x)
    np.testing.assert_array_equal(out["a"], np.maximum(x, 0))
    np.testing.assert_array_equal(out["b"], -x)
