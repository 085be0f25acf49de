"""Hostile artifacts (issue 11): saving over other data, special and linked files, edited
manifests, pinned digests, file-size limits, concurrent savers, permissions and the umask."""

from __future__ import annotations

import json
import os
import shutil
import stat
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import unirun
from unirun import Artifact, ArtifactError, OptionsError, _fs
from unirun._reference import ReferenceBackend
from unirun.cli import app
from unirun.testing import conv_net

_runner = CliRunner()


def _image() -> np.ndarray[Any, Any]:
    return np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)


@pytest.fixture
def art(cnn_path: Path) -> Artifact:
    return unirun.compile(cnn_path, backend="reference")


@pytest.fixture
def saved(art: Artifact, tmp_path: Path) -> Path:
    return art.save(tmp_path / "saved.unirun")


@pytest.fixture
def webapp(tmp_path: Path) -> Path:
    """A folder that merely holds a file named manifest.json (a web app's)."""
    root = tmp_path / "webapp"
    (root / "src").mkdir(parents=True)
    (root / "src" / "index.js").write_text("console.log('precious')")
    (root / "manifest.json").write_text('{"name": "my web app", "start_url": "/"}')
    return root


# -- item 2: overwriting ------------------------------------------------------------------------


def test_save_never_replaces_a_folder_that_is_not_an_artifact(
    art: Artifact, saved: Path, webapp: Path
) -> None:
    with pytest.raises(ArtifactError, match="already exists; pass --force"):
        art.save(webapp)
    with pytest.raises(ArtifactError, match="not a unirun artifact"):
        art.save(webapp, overwrite=True)
    # Even a genuine unirun manifest does not make a folder with other files an artifact.
    shutil.copy(saved / "manifest.json", webapp / "manifest.json")
    with pytest.raises(ArtifactError, match=r"holds src, a folder its manifest does not list"):
        art.save(webapp, overwrite=True)
    assert (webapp / "src" / "index.js").read_text(encoding="utf-8") == "console.log('precious')"


def test_save_overwrites_an_artifact_only_when_asked(
    art: Artifact, saved: Path, tmp_path: Path
) -> None:
    before = (saved / "manifest.json").read_bytes()
    with pytest.raises(ArtifactError, match="already exists"):
        art.save(saved)
    assert (saved / "manifest.json").read_bytes() == before
    other = unirun.compile(conv_net(size=8, seed=3), backend="reference")  # another build
    other.save(saved, overwrite=True)
    assert Artifact.open(saved).sha256 == other.sha256 != art.sha256
    (tmp_path / "empty").mkdir()  # an empty folder holds nothing to lose
    assert Artifact.open(art.save(tmp_path / "empty", overwrite=True)).sha256 == art.sha256
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_save_creates_only_the_last_folder_unless_asked(art: Artifact, tmp_path: Path) -> None:
    dest = tmp_path / "missing" / "dir" / "out.unirun"
    with pytest.raises(ArtifactError, match=r"the folder .*missing/dir does not exist"):
        art.save(dest)
    assert not (tmp_path / "missing").exists()
    assert art.save(dest, parents=True) == dest and Artifact.open(dest).sha256 == art.sha256


def test_compile_cli_checks_the_output_before_compiling(
    cnn_path: Path, webapp: Path, tmp_path: Path
) -> None:
    result = _runner.invoke(
        app, ["compile", str(cnn_path), "-b", "reference", "-f", "-o", str(webapp)]
    )
    assert result.exit_code == 1 and "not a unirun artifact" in result.output
    assert (webapp / "src" / "index.js").exists()
    missing = tmp_path / "nonexistent" / "dir" / "out"
    result = _runner.invoke(app, ["compile", str(cnn_path), "-b", "reference", "-o", str(missing)])
    assert result.exit_code == 1 and "does not exist" in result.output
    assert not (tmp_path / "nonexistent").exists()
    result = _runner.invoke(
        app,
        ["compile", str(cnn_path), "-b", "reference", "-o", str(missing), "--parents", "--json"],
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["sha256"] == Artifact.open(missing).sha256
    with unirun.load(missing, expect_sha256=printed["sha256"]) as model:
        assert model(_image())["logits"].shape == (2, 10)


@pytest.mark.parametrize("swap", ["renameat2", "two_renames"])
def test_concurrent_saves_to_one_destination(
    art: Artifact, tmp_path: Path, swap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """4 threads × 10 saves each to one place: every save succeeds (or, without overwrite, is
    refused with ArtifactError) and the destination is always one whole artifact; also where
    the system cannot swap two folders atomically (Windows, macOS, old Linux)."""
    if swap == "two_renames":
        monkeypatch.setattr(_fs, "_renameat2", lambda: None)
    dest = tmp_path / "shared.unirun"
    errors: list[BaseException] = []
    refused = [0]

    def worker(overwrite: bool) -> None:
        for _ in range(10):
            try:
                art.save(dest, overwrite=overwrite)
            except ArtifactError as exc:
                if overwrite:
                    errors.append(exc)
                refused[0] += 1
            except BaseException as exc:
                errors.append(exc)

    for overwrite in (True, False):
        threads = [threading.Thread(target=worker, args=(overwrite,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert Artifact.open(dest).sha256 == art.sha256  # verified: whole and intact
    assert refused[0] == 40  # the destination existed for every save without overwrite
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_save_at_the_file_size_limit_is_a_typed_error(
    saved: Path, tmp_path: Path, python_run: Any
) -> None:
    """RLIMIT_FSIZE stops the copy (EFBIG): ArtifactError, the old copy intact, no debris."""
    before = Artifact.open(saved).sha256
    result = python_run(f"""
        import resource, unirun
        art = unirun.Artifact.open({str(saved)!r})
        from unirun.testing import conv_net
        other = unirun.compile(conv_net(size=8, seed=4), backend="reference")
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            other.save({str(saved)!r}, overwrite=True)
        except unirun.ArtifactError as exc:
            print("ArtifactError:", exc)
        """)
    assert "ArtifactError: could not write the artifact" in result.stdout, result.stderr
    assert "File too large" in result.stdout
    assert Artifact.open(saved).sha256 == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# -- item 4: manifests, digests ----------------------------------------------------------------


def test_an_edited_manifest_is_refused(multi_path: Path, tmp_path: Path) -> None:
    """Reversing the outputs of a two-output artifact by hand is caught by the manifest's sha256
    (it used to swap the answers silently)."""
    saved = unirun.compile(multi_path, backend="reference").save(tmp_path / "multi.unirun")
    manifest = json.loads((saved / "manifest.json").read_text(encoding="utf-8"))
    manifest["outputs"].reverse()
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="does not match its sha256") as info:
        unirun.load(saved)
    assert info.value.field == "sha256"


def test_expect_sha256_pins_an_artifact(art: Artifact, saved: Path, cnn_path: Path) -> None:
    assert Artifact.open(saved).sha256 == art.sha256  # a copy keeps its identity
    with unirun.load(saved, expect_sha256=art.sha256.upper()) as model:
        assert model.cache_status == "artifact"
    other = unirun.compile(conv_net(size=8, seed=9), backend="reference")
    with pytest.raises(ArtifactError, match=f"not the expected {other.sha256}") as info:
        unirun.load(saved, expect_sha256=other.sha256)
    assert info.value.field == "sha256"
    with pytest.raises(ArtifactError, match="must be 64 hexadecimal digits"):
        unirun.load(saved, expect_sha256="abc")
    with pytest.raises(ArtifactError, match="not the expected"):
        unirun.load(Artifact.open(saved), expect_sha256=other.sha256)
    with pytest.raises(OptionsError, match="expect_sha256 checks a saved artifact"):
        unirun.load(cnn_path, backend="reference", expect_sha256=art.sha256)


def test_deeply_nested_manifest_is_a_typed_error(saved: Path) -> None:
    (saved / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ArtifactError, match="not JSON"):
        unirun.load(saved)


def test_huge_manifest_is_refused_unread(saved: Path) -> None:
    with (saved / "manifest.json").open("r+b") as fh:
        fh.truncate(64 << 20)  # sparse: 64 MiB of zeros
    with pytest.raises(ArtifactError, match="far more than any unirun manifest"):
        unirun.load(saved)


# -- item 5: special files never hang ------------------------------------------------------------


@pytest.mark.parametrize(
    "special",
    ["payload_fifo", "payload_dev_zero", "manifest_dev_zero", "manifest_fifo", "inspect_fifo"],
)
def test_special_files_in_an_artifact_never_hang(
    saved: Path, special: str, python_run: Any
) -> None:
    target = saved / ("model.onnx" if special.startswith("payload") else "manifest.json")
    target.unlink()
    if special.endswith("dev_zero"):
        target.symlink_to("/dev/zero")
    else:
        os.mkfifo(target)
    if special == "inspect_fifo":
        argv = ["inspect", str(saved)]
        result = python_run(f"import sys, unirun.cli; sys.exit(unirun.cli.main({argv!r}))")
        assert result.returncode == 1 and "FIFO" in result.stderr, result.stderr
        return
    result = python_run(f"""
        import unirun
        try:
            unirun.Artifact.open({str(saved)!r})
        except unirun.ArtifactError as exc:
            print("ArtifactError:", exc)
        """)
    assert "ArtifactError:" in result.stdout, result.stderr
    reason = "symbolic link" if special.endswith("dev_zero") else "FIFO"
    assert reason in result.stdout


def test_payload_that_is_a_directory_or_unreadable(saved: Path, python_run: Any) -> None:
    payload = saved / "model.onnx"
    data = payload.read_bytes()
    payload.unlink()
    payload.mkdir()
    with pytest.raises(ArtifactError, match=r"model\.onnx .* cannot be used: it is a directory"):
        unirun.load(saved)
    payload.rmdir()
    payload.write_bytes(data)
    payload.chmod(0)
    result = python_run(
        f"""
        import unirun
        try:
            unirun.load({str(saved)!r})
        except unirun.ArtifactError as exc:
            print("ArtifactError:", exc)
        """,
        unprivileged=True,
    )
    assert "ArtifactError:" in result.stdout and "permission denied" in result.stdout, (
        result.stdout + result.stderr
    )


# -- item 6: symbolic links lead outside ---------------------------------------------------------


class _WithSubfolder(ReferenceBackend):
    """The reference backend plus a payload file in a subfolder, as engines with directory
    payloads (Core ML's .mlpackage) write."""

    name = "subfolder"

    def compile(self, model: Any, request: Any) -> Any:
        result = super().compile(model, request)
        (request.directory / "sub").mkdir()
        (request.directory / "sub" / "notes.txt").write_text("public")
        return result


def test_payload_symlinks_that_lead_outside_are_refused(cnn_path: Path, tmp_path: Path) -> None:
    unirun.register_backend(_WithSubfolder())
    try:
        saved = unirun.compile(cnn_path, backend="subfolder").save(tmp_path / "a.unirun")
    finally:
        unirun.unregister_backend("subfolder")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "notes.txt").write_text("public")  # same bytes: the checksum alone would pass
    shutil.move(saved / "model.onnx", outside / "model.onnx")
    (saved / "model.onnx").symlink_to(outside / "model.onnx")
    with pytest.raises(ArtifactError, match=r"model\.onnx .*symbolic link"):
        Artifact.open(saved)
    (saved / "model.onnx").unlink()
    shutil.copy(outside / "model.onnx", saved / "model.onnx")
    shutil.rmtree(saved / "sub")
    (saved / "sub").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ArtifactError, match=r"sub/notes\.txt .*symbolic link"):
        Artifact.open(saved)
    unverified = Artifact.open(saved, verify=False)
    with pytest.raises(ArtifactError, match=r"cannot copy payload file sub/notes\.txt"):
        unverified.save(tmp_path / "copy.unirun")
    assert not (tmp_path / "copy.unirun").exists()


# -- item 11: typed errors -------------------------------------------------------------------------


def test_nul_bytes_in_paths_are_typed_errors(art: Artifact, cnn_path: Path) -> None:
    with pytest.raises(ArtifactError, match="invalid path"):
        Artifact.open("bad\0name")
    with pytest.raises(ArtifactError):
        art.save("bad\0name")
    with pytest.raises(unirun.InvalidModelError, match="invalid path"):
        unirun.load(str(cnn_path) + "\0.onnx", backend="reference")
    with pytest.raises(OptionsError, match="cache must be"):
        unirun.load(cnn_path, backend="reference", cache="bad\0dir")


# -- item 13: the umask ---------------------------------------------------------------------------


def test_saved_artifacts_respect_the_umask(art: Artifact, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        dest = art.save(tmp_path / "shared.unirun")
    finally:
        os.umask(old)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in dest.iterdir()} == {0o644}
