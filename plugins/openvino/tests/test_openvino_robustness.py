"""Hostile and awkward cases against the real OpenVINO: edited manifests, inputs OpenVINO folds
away, declared shapes its reshape cannot take, a full disk, a cyclic graph."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import openvino as ov
import pytest
from onnx import TensorProto, helper

import unirun
from unirun import ArtifactError, InvalidModelError, OptionsError, UnsupportedModelError
from unirun.artifact import Artifact, manifest_digest
from unirun.testing import load_request, mlp
from unirun.testing.models import streaming_vad
from unirun.testing.onnx_backend import native_backend, node_cases, onnx_backend, run_suite
from unirun_openvino import OpenVINOBackend

Array = np.ndarray[Any, Any]
LOG = "unirun.openvino"


def _two_outputs() -> Any:
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["a"], name="relu"),
            helper.make_node("Neg", ["x"], ["b"], name="neg"),
        ],
        "two",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [2, 3]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _edited(path: Path, change: Any) -> Path:
    """Edit the manifest and reseal its digest, as an attacker with write access would."""
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    change(manifest)
    manifest["sha256"] = manifest_digest(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return path


X = np.array([[-1.0, 2.0, -3.0], [4.0, -5.0, 6.0]], np.float32)


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_outputs_follow_openvinos_names_not_the_manifest_order(tmp_path: Path, device: str) -> None:
    """A manifest listing the outputs in another order must not swap the answers: each output
    is found by the name OpenVINO gives it."""
    art = unirun.compile(_two_outputs(), backend="openvino", device=device, cache=False)
    path = art.save(tmp_path / "two.ov.unirun")
    _edited(path, lambda m: m["outputs"].reverse())
    reordered = Artifact.open(path)
    assert [s.name for s in reordered.outputs] == ["b", "a"]
    executable = OpenVINOBackend().load(load_request(reordered, device)).create_context()
    try:
        b, a = executable.infer({"x": X})
    finally:
        executable.close()
    np.testing.assert_array_equal(a, np.maximum(X, 0))
    np.testing.assert_array_equal(b, -X)
    # The same through unirun.load, as long as the core accepts the edited manifest.
    try:
        model = unirun.load(path)
    except ArtifactError:
        return
    with model:
        out = model(X)
    np.testing.assert_array_equal(out["a"], np.maximum(X, 0))
    np.testing.assert_array_equal(out["b"], -X)


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("properties", {"CACHE_DIR": "{tmp}/planted"}, "CACHE_DIR"),
        ("properties", {"KV_CACHE_PRECISION": "f16"}, "KV_CACHE_PRECISION"),
        ("properties", {"INFERENCE_PRECISION_HINT": "bf16"}, "INFERENCE_PRECISION_HINT='bf16'"),
        ("cpu_core_properties", {"CACHE_DIR": "{tmp}/planted"}, "CPU CACHE_DIR"),
    ],
)
def test_a_manifest_cannot_set_engine_properties_unirun_does_not(
    tmp_path: Path, field: str, value: dict[str, str], named: str
) -> None:
    """OpenVINO properties can write files or change outputs; an artifact may only carry the
    ones unirun sets itself. Nothing is written where the manifest points."""
    art = unirun.compile(mlp(), backend="openvino", device="cpu", cache=False)
    path = art.save(tmp_path / "mlp.ov.unirun")
    planted = {k: v.format(tmp=tmp_path) for k, v in value.items()}
    _edited(path, lambda m: m["extra"].setdefault(field, {}).update(planted))
    with pytest.raises(ArtifactError, match=f"asks OpenVINO for {named}") as info:
        OpenVINOBackend().load(load_request(Artifact.open(path), "cpu", tmp_path / "engines"))
    assert info.value.field == "extra"
    with pytest.raises(ArtifactError, match="recompile the model instead of editing"):
        unirun.load(path)
    assert not (tmp_path / "planted").exists()


def test_raw_properties_may_only_tune_speed() -> None:
    with pytest.raises(OptionsError, match=r"does not pass OpenVINO property CACHE_DIR through"):
        unirun.compile(
            mlp(), backend="openvino", device="cpu", options={"properties": {"CACHE_DIR": "/x"}}
        )
    with pytest.raises(OptionsError, match="INFERENCE_PRECISION_HINT"):
        unirun.compile(
            mlp(),
            backend="openvino",
            device="cpu",
            options={"properties": {"INFERENCE_PRECISION_HINT": "bf16"}},
        )
    with unirun.load(
        mlp(),
        backend="openvino",
        device="cpu",
        options={"properties": {"ENABLE_HYPER_THREADING": False}},
    ) as m:
        assert m._executable._compiled.get_property("ENABLE_HYPER_THREADING") is False  # type: ignore[attr-defined]


def test_inputs_openvino_folds_away_are_accepted_and_ignored() -> None:
    """The ONNX node tests whose Dropout ratio OpenVINO folds away (its data input then takes
    the name of the output it feeds): unirun loads them, takes every declared input and
    returns the expected outputs."""
    cases = node_cases(r"^test_dropout_default(_mask)?_ratio$")
    assert len(cases) == 2
    for case in cases:
        native = ov.Core().read_model(case.model.SerializeToString())
        assert len(native.inputs) == 1 and "x" not in native.inputs[0].get_names()
        with unirun.load(case.model, backend="openvino", device="cpu", cache=False) as m:
            assert [s.name for s in m.inputs] == ["x", "r"]
            got = m({"x": case.inputs[0], "r": case.inputs[1]})
        for value, want in zip(got.values(), case.outputs, strict=True):
            np.testing.assert_allclose(value, want, rtol=1e-6, err_msg=case.name)


def test_dropout_node_tests_pass_at_least_where_openvino_passes_natively() -> None:
    cases = node_cases(r"^test_dropout")
    ours = run_suite(onnx_backend("openvino"), cases, "cpu")
    theirs = run_suite(native_backend("openvino"), cases, "CPU")
    lost = [n for n, o in theirs.items() if o.status == "pass" and ours[n].status != "pass"]
    assert not lost, [(n, ours[n].message) for n in lost]
    assert all(o.status == "pass" for o in ours.values()), ours


# -- declared shapes --------------------------------------------------------------------------


def _stream(model: Any, chunks: list[Array], sr: int, run: Any) -> list[Array]:
    """Probabilities for consecutive chunks, carrying the state from each call to the next."""
    state = np.zeros((2, 1, 16), np.float32)
    probs = []
    for chunk in chunks:
        out = run({"input": chunk, "state": state, "sr": np.array(sr, np.int64)})
        probs.append(out["output"])
        state = out["stateN"]
    return probs


def _chunks(count: int, size: int) -> list[Array]:
    rng = np.random.default_rng(size)
    return [rng.standard_normal((1, size)).astype(np.float32) for _ in range(count)]


def _onnxruntime(model: Any) -> Any:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return lambda feeds: dict(zip(names, session.run(None, feeds), strict=True))


@pytest.mark.parametrize("shapes", [None, {"input": (1, 512), "state": (2, 1, 16)}])
def test_streaming_lstm_model_with_if_and_scalar_input(shapes: Any) -> None:
    model = streaming_vad()
    chunks = _chunks(4, 512)
    want = _stream(model, chunks, 16000, _onnxruntime(model))
    with unirun.load(model, backend="openvino", device="cpu", shapes=shapes) as m:
        got = _stream(model, chunks, 16000, m)
        if shapes is not None:
            assert m.inputs[0].shape == (1, 512)
    np.testing.assert_allclose(np.concatenate(got), np.concatenate(want), rtol=1e-5, atol=1e-6)


def _fixed_reshape_model() -> Any:
    """``x`` [n, 6] → Reshape to the constant [2, 3]: only n = 1 is runnable, and OpenVINO's
    reshape refuses any other fixed n at compile time."""
    from onnx import numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape")],
        "fixed_reshape",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [numpy_helper.from_array(np.array([2, 3], np.int64), "shape")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_declared_shapes_openvino_cannot_take_fall_back_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """OpenVINO refuses to reshape the graph to the declared shape; the model is built with its
    own dimensions, the warning names the declared shapes, and unirun still checks them."""
    with caplog.at_level(logging.WARNING, LOG):
        m = unirun.load(
            _fixed_reshape_model(), backend="openvino", device="cpu", shapes={"x": (1, 6)}
        )
    with m:
        np.testing.assert_array_equal(m(np.arange(6, dtype=np.float32)[None])["y"].shape, (2, 3))
        with pytest.raises(unirun.InputError, match=r"expects float32\[1, 6\]"):
            m(np.zeros((2, 6), np.float32))
    assert not caplog.records  # (1, 6) is a shape OpenVINO can reshape to
    with caplog.at_level(logging.WARNING, LOG):
        m = unirun.load(
            _fixed_reshape_model(), backend="openvino", device="cpu", shapes={"x": (2, 6)}
        )
    with m:
        with pytest.raises(unirun.InputError, match=r"'x' expects .*got shape \(1, 6\)"):
            m(np.zeros((1, 6), np.float32))
        with pytest.raises(unirun.InferenceError):
            m(np.zeros((2, 6), np.float32))  # the model itself cannot run this shape
    (record,) = [r for r in caplog.records if r.name == LOG]
    assert "declared input shapes x=(2, 6)" in record.getMessage()
    assert "built it with the graph's own dimensions" in record.getMessage()


# -- hostile environment and graphs -------------------------------------------------------------


_COMPILE = """
import resource, sys, unirun
from unirun.testing import mlp
model = mlp(features=512, hidden=512)  # 1 MiB of weights
limit = int(sys.argv[2])
if limit:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
try:
    unirun.compile(model, backend=sys.argv[1], device="cpu", cache=sys.argv[3])
except unirun.UnirunError as exc:
    print(type(exc).__name__ + ": " + str(exc))
    sys.exit(3)
"""


def _compile_in_subprocess(
    tmp_path: Path, backend: str, limit: int, cache: Path, prefix: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "compile.py"
    script.write_text(_COMPILE)
    return subprocess.run(
        [*(prefix or []), sys.executable, str(script), backend, str(limit), str(cache)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_a_file_size_limit_during_compile_says_there_is_no_space(tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes every write past 256 KiB fail (EFBIG), as a full disk does (ENOSPC):
    OpenVINO itself says "basic_ios::clear: iostream error"."""
    done = _compile_in_subprocess(tmp_path, "openvino", 256 * 1024, tmp_path / "cache")
    assert done.returncode == 3, done.stderr[-2000:]
    assert done.stdout.startswith("CompileError: no space left for the file"), done.stdout
    assert "ulimit -f" in done.stdout and "File too large" in done.stdout
    assert "basic_ios" not in done.stdout


def _tmpfs_prefix(mount: Path) -> list[str] | None:
    """A command prefix that runs a program with a 192 KiB tmpfs at ``mount`` (a user and
    mount namespace: no root needed), or None where namespaces are not allowed."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    mount.mkdir()
    prefix = [
        unshare,
        "--user",
        "--map-root-user",
        "--mount",
        "sh",
        "-c",
        f'mount -t tmpfs -o size=192k tmpfs "{mount}" && exec "$0" "$@"',
    ]
    probe = subprocess.run([*prefix, "true"], capture_output=True, check=False)
    return prefix if probe.returncode == 0 else None


def test_a_full_disk_during_compile_says_no_space_left_on_device(tmp_path: Path) -> None:
    prefix = _tmpfs_prefix(tmp_path / "small")
    if prefix is None:
        pytest.skip("cannot mount a small tmpfs here: user namespaces are not allowed")
    done = _compile_in_subprocess(tmp_path, "openvino", 0, tmp_path / "small" / "cache", prefix)
    assert done.returncode == 3, done.stderr[-2000:]
    assert done.stdout.startswith("CompileError: no space left on device"), done.stdout
    assert "UNIRUN_CACHE_DIR" in done.stdout


def test_a_cyclic_graph_is_refused_before_openvino_sees_it() -> None:
    """OpenVINO itself runs out of memory (std::bad_alloc) or spins on a cycle."""
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["x", "b"], ["a"], name="add"),
            helper.make_node("Relu", ["a"], ["b"], name="relu"),
            helper.make_node("Identity", ["a"], ["y"], name="out"),
        ],
        "cyclic",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with pytest.raises(InvalidModelError, match=r"has a cycle: 'add' \(Add\) → 'relu' \(Relu\)"):
        unirun.load(model, backend="openvino", device="cpu", cache=False)


def test_shapes_that_fail_without_a_fallback_raise_the_models_own_error() -> None:
    """When the graph fails as it is too, the error is the model's (not the shapes')."""
    graph = helper.make_graph(
        [helper.make_node("FooBar", ["x"], ["y"], name="fb")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with pytest.raises(unirun.UnsupportedModelError, match="FooBar"):
        unirun.compile(model, backend="openvino", device="cpu", shapes={"x": (3,)}, cache=False)


def test_a_dimension_past_openvinos_limit_is_refused_not_clamped() -> None:
    """OpenVINO clamps an Expand to 2**31 elements to shape (2147483647,) and runs it: the
    plugin refuses such a model at compile time instead (issue 11, item 10)."""
    graph = helper.make_graph(
        [helper.make_node("Expand", ["x", "shape"], ["y"], name="expand")],
        "huge",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2**31])],
        [helper.make_tensor("shape", TensorProto.INT64, [1], [2**31])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with pytest.raises(UnsupportedModelError, match="past OpenVINO's limit"):
        unirun.compile(model, backend="openvino", device="cpu", cache=False)
