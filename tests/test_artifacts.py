"""Artifacts and the compile cache: round trips, tampering, corruption, concurrency."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import unirun
from unirun import ArtifactError, InvalidModelError, OptionsError
from unirun._reference import ReferenceBackend
from unirun.artifact import FORMAT_VERSION, manifest_digest


def _image() -> np.ndarray[Any, Any]:
    return np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)


def test_compile_save_load_round_trip(cnn_path: Path, tmp_path: Path) -> None:
    art = unirun.compile(cnn_path, backend="reference")
    saved = art.save(tmp_path / "cnn.ref.unirun")
    manifest = json.loads((saved / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["backend"] == "reference"
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["inputs"][0] == {"name": "image", "dtype": "float32", "shape": ["N", 3, 8, 8]}
    assert [f["path"] for f in manifest["files"]] == ["model.onnx"]
    with unirun.load(saved) as from_artifact, unirun.load(cnn_path, backend="reference") as direct:
        assert from_artifact.backend == "reference" and from_artifact.cache_status == "artifact"
        np.testing.assert_array_equal(from_artifact(_image())["logits"], direct(_image())["logits"])


def test_save_replaces_an_artifact_but_not_other_data(cnn_path: Path, tmp_path: Path) -> None:
    art = unirun.compile(cnn_path, backend="reference")
    dest = art.save(tmp_path / "a")
    with pytest.raises(ArtifactError, match=r"already exists; pass --force \(overwrite=True"):
        art.save(dest)
    art.save(dest, overwrite=True)  # saving over an artifact is fine when asked
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "precious.txt").write_text("keep me")
    with pytest.raises(ArtifactError, match=r"not a unirun artifact .*; refusing"):
        art.save(tmp_path / "data", overwrite=True)
    assert (tmp_path / "data" / "precious.txt").read_text(encoding="utf-8") == "keep me"


@pytest.fixture
def saved(cnn_path: Path, tmp_path: Path) -> Path:
    return unirun.compile(cnn_path, backend="reference").save(tmp_path / "saved")


def test_tampered_payload_is_refused(saved: Path) -> None:
    payload = saved / "model.onnx"
    data = bytearray(payload.read_bytes())
    data[-10] ^= 0xFF
    payload.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="does not match its checksum") as info:
        unirun.load(saved)
    assert info.value.field == "files"


def test_missing_payload_is_refused(saved: Path) -> None:
    (saved / "model.onnx").unlink()
    with pytest.raises(ArtifactError, match=r"missing payload file model\.onnx"):
        unirun.load(saved)


@pytest.mark.parametrize(
    ("edit", "match", "field"),
    [
        (
            lambda m: m.update(format_version=FORMAT_VERSION + 1),
            "newer than this unirun",
            "format_version",
        ),
        (lambda m: m.update(format="something"), "not a unirun manifest", "format"),
        (lambda m: m.pop("backend"), "invalid at backend", "backend"),
        (lambda m: m["files"][0].update(path="../escape"), "invalid at files.0.path", None),
    ],
)
def test_invalid_manifest_names_the_field(
    saved: Path, edit: Any, match: str, field: str | None
) -> None:
    manifest = json.loads((saved / "manifest.json").read_text(encoding="utf-8"))
    edit(manifest)
    manifest["sha256"] = manifest_digest(manifest)  # a consistent edit: the fields are checked
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=match) as info:
        unirun.load(saved)
    if field:
        assert info.value.field == field


def test_manifest_not_json_and_not_an_artifact(saved: Path, tmp_path: Path) -> None:
    (saved / "manifest.json").write_text("{ truncated")
    with pytest.raises(ArtifactError, match="not JSON"):
        unirun.load(saved)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match=r"has no manifest\.json"):
        unirun.load(tmp_path / "empty")


def test_artifact_for_another_backend_or_device_names_the_field(saved: Path) -> None:
    with pytest.raises(
        ArtifactError, match="built for backend 'reference', not 'onnxruntime'"
    ) as e:
        unirun.load(saved, backend="onnxruntime")
    assert e.value.field == "backend"
    with pytest.raises(ArtifactError, match="built for device cpu, not cuda") as e:
        unirun.load(saved, device="cuda")
    assert e.value.field == "device"


def test_second_load_hits_the_cache_without_compiling(
    cnn_path: Path, cache_dir: Path, compile_calls: list[int]
) -> None:
    with unirun.load(cnn_path, backend="reference") as first:
        assert first.cache_status == "miss"
    with unirun.load(cnn_path, backend="reference") as second:
        assert second.cache_status == "hit"
        assert second.artifact.directory == first.artifact.directory
    assert compile_calls == [1]
    assert first.artifact.directory.parent == cache_dir / "artifacts"


def test_options_and_model_changes_miss_the_cache(cnn_path: Path, tmp_path: Path) -> None:
    a = unirun.compile(cnn_path, backend="reference")
    b = unirun.compile(cnn_path, backend="reference", shapes={"image": (1, 3, 8, 8)})
    other = tmp_path / "other.onnx"
    import onnx

    from unirun.testing import conv_net

    onnx.save(conv_net(size=8, seed=5), str(other))
    c = unirun.compile(other, backend="reference")
    assert len({a.directory, b.directory, c.directory}) == 3


@pytest.mark.parametrize("damage", ["truncate", "delete_manifest", "garbage_manifest"])
def test_corrupted_cache_entry_is_rebuilt(
    cnn_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    with unirun.load(cnn_path, backend="reference") as model:
        entry = model.artifact.directory
        expected = model(_image())["logits"]
    if damage == "truncate":
        payload = entry / "model.onnx"
        payload.write_bytes(payload.read_bytes()[:100])
    elif damage == "delete_manifest":
        (entry / "manifest.json").unlink()
    else:
        (entry / "manifest.json").write_text("garbage")
    with unirun.load(cnn_path, backend="reference") as model:
        assert model.cache_status == "rebuilt"
        np.testing.assert_array_equal(model(_image())["logits"], expected)
    assert "rebuilding cache entry" in caplog.text


def test_cache_false_builds_in_a_temporary_directory(cnn_path: Path, cache_dir: Path) -> None:
    with unirun.load(cnn_path, backend="reference", cache=False) as model:
        assert model.cache_status == "off"
        assert cache_dir not in model.artifact.directory.parents
    assert not (cache_dir / "artifacts").exists()


def test_explicit_cache_directory(cnn_path: Path, tmp_path: Path) -> None:
    with unirun.load(cnn_path, backend="reference", cache=tmp_path / "mine") as model:
        assert (tmp_path / "mine" / "artifacts") in model.artifact.directory.parents


def test_two_processes_build_one_entry(cnn_path: Path, cache_dir: Path, tmp_path: Path) -> None:
    """Concurrent builders of the same key: one builds (under the lock), the other hits."""
    log = tmp_path / "compiles.log"
    script = textwrap.dedent(f"""
        import time, unirun
        from unirun._reference import ReferenceBackend
        class Slow(ReferenceBackend):
            name = "slowref"
            def compile(self, model, target):
                with open({str(log)!r}, "a") as fh:
                    fh.write("compile\\n")
                time.sleep(1.0)
                return super().compile(model, target)
        unirun.register_backend(Slow())
        m = unirun.load({str(cnn_path)!r}, backend="slowref")
        print(m.cache_status)
    """)
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    statuses = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert all(p.returncode == 0 for p in procs)
    assert statuses == ["hit", "miss"]
    assert log.read_text(encoding="utf-8").count("compile") == 1
    assert not any((cache_dir / "tmp").iterdir())


def test_invalid_model_sources(tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.onnx"
    from unirun.testing import conv_net

    truncated.write_bytes(conv_net().SerializeToString()[:-37])
    cases = {
        tmp_path / "missing.onnx": "no such model file",
        truncated: "not a readable ONNX model|no ONNX graph|lacks an IR version",
        tmp_path / "empty.onnx": "is empty",
        tmp_path / "text.onnx": "not a readable ONNX model|no ONNX graph",
    }
    (tmp_path / "empty.onnx").write_bytes(b"")
    (tmp_path / "text.onnx").write_text("this is not a model at all")
    for path, match in cases.items():
        with pytest.raises(InvalidModelError, match=match):
            unirun.load(path, backend="reference")
    with pytest.raises(InvalidModelError, match=r"expected a path, bytes or onnx\.ModelProto"):
        unirun.load(12345, backend="reference")


def test_shapes_that_contradict_the_model(cnn_path: Path) -> None:
    with pytest.raises(
        OptionsError, match="input 'img', which the model does not have; inputs: image"
    ):
        unirun.compile(cnn_path, backend="reference", shapes={"img": (1, 3, 8, 8)})
    with pytest.raises(OptionsError, match="rank 3, but the model declares"):
        unirun.compile(cnn_path, backend="reference", shapes={"image": (1, 8, 8)})
    with pytest.raises(OptionsError, match="dimension 1 as 4, but the model fixes it to 3"):
        unirun.compile(cnn_path, backend="reference", shapes={"image": (1, 4, 8, 8)})
    with pytest.raises(OptionsError, match="does not support precision 'fp16'"):
        unirun.compile(cnn_path, backend="reference", precision="fp16")
    with pytest.raises(OptionsError, match="precision"):
        unirun.compile(cnn_path, backend="reference", precision="fp12")
    with pytest.raises(OptionsError, match="takes no options"):
        unirun.compile(cnn_path, backend="reference", options={"x": 1})


def test_external_data_changes_the_hash(tmp_path: Path) -> None:
    import onnx

    from unirun.source import OnnxModel
    from unirun.testing import conv_net

    path = tmp_path / "ext.onnx"
    onnx.save(
        conv_net(size=8),
        str(path),
        save_as_external_data=True,
        location="ext.bin",
        size_threshold=0,
    )
    first = OnnxModel.from_source(path)
    assert first.has_external_data
    data = bytearray((tmp_path / "ext.bin").read_bytes())
    data[0] ^= 1
    (tmp_path / "ext.bin").write_bytes(bytes(data))
    assert OnnxModel.from_source(path).sha256 != first.sha256
    shutil.copy(tmp_path / "ext.bin", tmp_path / "keep.bin")
    (tmp_path / "ext.bin").unlink()
    with pytest.raises(InvalidModelError, match=r"keeps weights in ext\.bin"):
        OnnxModel.from_source(path)


@pytest.fixture
def compile_calls() -> Any:
    """Count compiles by wrapping the reference backend (the engine itself is untouched)."""
    from unirun._reference import ReferenceBackend

    calls = [0]

    class Counting(ReferenceBackend):
        def compile(self, model: Any, target: Any) -> Any:
            calls[0] += 1
            return super().compile(model, target)

    unirun.register_backend(Counting(), replace=True)
    yield calls
    unirun.unregister_backend("reference")


def test_compile_options_cannot_change_an_artifact(saved: Path) -> None:
    with pytest.raises(OptionsError, match=r"precision, threads cannot change a compiled artifact"):
        unirun.load(saved, precision="fp16", threads=2)


def test_sequence_inputs_are_unsupported_not_invalid() -> None:
    """A backend that declares tensors only refuses a sequence input with the typed error,
    naming the input and its type, before its compile runs."""
    from onnx import TensorProto, helper

    from unirun import UnsupportedModelError

    class TensorsOnly(ReferenceBackend):
        name = "tensorsonly"
        capabilities = dataclasses.replace(ReferenceBackend.capabilities, value_kinds=("tensor",))

        def compile(self, model: Any, request: Any) -> Any:
            raise AssertionError("compile must not be reached")

    graph = helper.make_graph(
        [helper.make_node("SequenceLength", ["seq"], ["n"])],
        "seq",
        [helper.make_tensor_sequence_value_info("seq", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("n", TensorProto.INT64, [])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    unirun.register_backend(TensorsOnly())
    try:
        with pytest.raises(
            UnsupportedModelError,
            match=r"'tensorsonly' does not carry sequence values .* 'seq': seq\(float32\); "
            r"use a backend that carries them \(.*reference",
        ):
            unirun.compile(model, backend="tensorsonly", cache=False)
    finally:
        unirun.unregister_backend("tensorsonly")


def test_precision_substitution_is_reported_and_refused_when_strict(
    cnn_path: Path, cache_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A plugin that reports computing in another precision than asked: the model, the manifest
    and a WARNING say so; strict_precision=True refuses with OptionsError."""

    class Substituting(ReferenceBackend):
        name = "subst"
        capabilities = dataclasses.replace(
            ReferenceBackend.capabilities, precisions=("fp32", "fp16")
        )

        def compile(self, model: Any, request: Any) -> Any:
            return dataclasses.replace(super().compile(model, request), precision="fp32")

    unirun.register_backend(Substituting())
    try:
        with (
            caplog.at_level(logging.WARNING, logger="unirun"),
            unirun.load(cnn_path, backend="subst", precision="fp16") as model,
        ):
            assert (model.precision, model.options.precision) == ("fp32", "fp16")
            assert model.artifact.manifest.computed_precision == "fp32"
        assert any("not the requested fp16" in r.getMessage() for r in caplog.records)
        with pytest.raises(unirun.OptionsError, match="strict_precision"):
            unirun.load(cnn_path, backend="subst", precision="fp16", strict_precision=True)
        with unirun.load(cnn_path, backend="subst") as model:
            assert model.precision == "fp32" and model.artifact.manifest.computed_precision is None
    finally:
        unirun.unregister_backend("subst")
