"""The compile cache under attack (issue 11): `cache clear -b` with paths, unusable cache
folders, files in the way, entries copied under another key, stopped lock holders, builds that
could never load, and the umask."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

import unirun
from unirun import CacheError, CompileError, OptionsError
from unirun._reference import ReferenceBackend
from unirun.cli import app
from unirun.testing import conv_net

_runner = CliRunner()


def _image() -> np.ndarray[Any, Any]:
    return np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)


def _entry(source: Any, cache: Path | bool = True) -> Path:
    with unirun.load(source, backend="reference", cache=cache) as model:
        return model.artifact.directory


# -- item 1: cache clear -b -----------------------------------------------------------------------


def test_cache_clear_takes_only_backend_names(
    cnn_path: Path, cache_dir: Path, tmp_path: Path
) -> None:
    entry = _entry(cnn_path)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    for name in (str(victim), "..", "/", "../../victim", "nope", ""):
        result = _runner.invoke(app, ["cache", "clear", "-b", name])
        assert result.exit_code == 2, (name, result.output)
        assert "-b takes one of:" in result.output and "reference" in result.output
    assert (victim / "keep.txt").read_text(encoding="utf-8") == "mine"
    assert entry.is_dir() and (cache_dir / "tmp").is_dir() and (cache_dir / "locks").is_dir()
    result = _runner.invoke(app, ["cache", "clear", "-b", "reference"])
    assert result.exit_code == 0 and "removed 1 reference entry" in result.output
    assert not entry.exists()


def test_cache_clear_never_follows_links_out_of_the_cache(
    cnn_path: Path, cache_dir: Path, tmp_path: Path
) -> None:
    _entry(cnn_path)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    shutil.rmtree(cache_dir / "engines" / "reference")
    (cache_dir / "engines" / "reference").symlink_to(victim, target_is_directory=True)
    (cache_dir / "artifacts" / ("f" * 64)).symlink_to(victim, target_is_directory=True)
    assert _runner.invoke(app, ["cache", "clear", "-b", "reference"]).exit_code == 0
    assert _runner.invoke(app, ["cache", "clear"]).exit_code == 0
    assert (victim / "keep.txt").read_text(encoding="utf-8") == "mine"


# -- item 11: the cache folder --------------------------------------------------------------------


def test_unusable_cache_folders_are_typed_errors(
    cnn_path: Path, tmp_path: Path, python_run: Any
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    with pytest.raises(CacheError, match=r"afile is a file .*cache=False") as info:
        unirun.load(cnn_path, backend="reference", cache=afile)
    assert info.value.path == str(afile)
    with pytest.raises(CacheError, match="is a file"):
        unirun.load(cnn_path, backend="reference", cache=afile / "below")
    with pytest.raises(OptionsError, match=r"cache must be True .*got int 5"):
        unirun.load(cnn_path, backend="reference", cache=5)  # type: ignore[arg-type]
    locked = tmp_path / "readonly"
    locked.mkdir()
    locked.chmod(0o555)
    result = python_run(
        f"""
        import unirun
        try:
            unirun.load({str(cnn_path)!r}, backend="reference", cache={str(locked)!r})
        except unirun.CacheError as exc:
            print("CacheError:", exc)
        """,
        unprivileged=True,
    )
    assert "CacheError: cannot write to the compile cache" in result.stdout, result.stderr
    assert "permission denied" in result.stdout and "cache=False" in result.stdout


@pytest.mark.parametrize(
    "obstacle",
    ["locks_file", "tmp_file", "artifacts_file", "engines_file", "entry_file", "entry_dangling"],
)
def test_what_is_in_the_way_is_repaired(
    cnn_path: Path, cache_dir: Path, obstacle: str, caplog: pytest.LogCaptureFixture
) -> None:
    entry = _entry(cnn_path)
    where = {
        "locks_file": cache_dir / "locks",
        "tmp_file": cache_dir / "tmp",
        "artifacts_file": cache_dir / "artifacts",
        "engines_file": cache_dir / "engines",
    }.get(obstacle, entry)
    shutil.rmtree(entry)  # so that the next load builds
    if where.exists():
        shutil.rmtree(where)
    if obstacle == "entry_dangling":
        where.symlink_to(cache_dir / "gone")
    else:
        where.write_text("in the way")
    with caplog.at_level(logging.WARNING, logger="unirun"):
        with unirun.load(cnn_path, backend="reference") as model:
            assert model.cache_status in ("miss", "rebuilt")
            assert model(_image())["logits"].shape == (2, 10)
        with unirun.load(cnn_path, backend="reference") as model:
            assert model.cache_status == "hit"
    assert entry.is_dir() and not entry.is_symlink()
    assert any("not a folder" in r.getMessage() for r in caplog.records)


# -- item 4: entries are checked against their key -------------------------------------------------


def test_an_entry_copied_under_another_key_is_rebuilt(
    cnn_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    other = tmp_path / "other.onnx"
    onnx.save(conv_net(size=8, seed=7), str(other))
    with unirun.load(cnn_path, backend="reference") as model:
        mine, want = model.artifact.directory, model(_image())["logits"]
    theirs = _entry(other)
    shutil.rmtree(mine)
    shutil.copytree(theirs, mine)  # a valid artifact, but for model B
    with (
        caplog.at_level(logging.WARNING, logger="unirun.cache"),
        unirun.load(cnn_path, backend="reference") as model,
    ):
        assert model.cache_status == "rebuilt"
        np.testing.assert_array_equal(model(_image())["logits"], want)
    assert "built for another key (source_sha256 differs)" in caplog.text


# -- item 13: build locks and the umask -----------------------------------------------------------


def test_a_stopped_lock_holder_is_reported_and_times_out(
    cnn_path: Path, cache_dir: Path, python_run: Any
) -> None:
    entry = _entry(cnn_path)
    shutil.rmtree(entry)
    lock = cache_dir / "locks" / f"{entry.name}.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
                import os, signal, sys
                from filelock import FileLock
                lock = FileLock({str(lock)!r})
                lock.acquire()
                print("locked", flush=True)
                os.kill(os.getpid(), signal.SIGSTOP)
            """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        result = python_run(
            f"""
            import logging, os, time
            logging.basicConfig(level=logging.WARNING)
            os.environ["UNIRUN_CACHE_LOCK_TIMEOUT"] = "2"
            import unirun
            from unirun.cache import CompileCache
            CompileCache.lock_warn_after = 0.5
            try:
                unirun.load({str(cnn_path)!r}, backend="reference")
            except unirun.CacheError as exc:
                print("CacheError:", exc, exc.path)
            """,
            timeout=60,
        )
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.communicate()
    assert f"still waiting after 0.5 s for the build lock {lock}" in result.stderr, result.stderr
    assert "UNIRUN_CACHE_LOCK_TIMEOUT" in result.stderr
    assert f"CacheError: gave up after 2 s waiting for the build lock {lock}" in result.stdout
    assert result.stdout.strip().endswith(str(lock))


def test_bad_lock_timeout_is_an_options_error(
    cnn_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNIRUN_CACHE_LOCK_TIMEOUT", "soon")
    with pytest.raises(OptionsError, match="UNIRUN_CACHE_LOCK_TIMEOUT must be a number"):
        unirun.load(cnn_path, backend="reference")


def test_cache_entries_respect_the_umask(cnn_path: Path) -> None:
    old = os.umask(0o022)
    try:
        entry = _entry(cnn_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(entry.stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in entry.iterdir()} == {0o644}


# -- item 3: entries that could never load are not kept -------------------------------------------


class _Leaky(ReferenceBackend):
    """A buggy plugin whose payload refers to a weights file it did not put in the artifact."""

    name = "leaky"

    def compile(self, model: Any, request: Any) -> Any:
        result = super().compile(model, request)
        proto = onnx.load(str(request.directory / "model.onnx"))
        tensor = proto.graph.initializer[0]
        tensor.ClearField("raw_data")
        tensor.data_location = onnx.TensorProto.EXTERNAL
        tensor.external_data.add(key="location", value="w.bin")
        onnx.save(proto, str(request.directory / "model.onnx"))
        return result


def test_a_build_that_could_never_load_is_not_kept(cnn_path: Path, cache_dir: Path) -> None:
    unirun.register_backend(_Leaky())
    try:
        with pytest.raises(CompileError, match=r"refer to 'w\.bin', a file outside the artifact"):
            unirun.load(cnn_path, backend="leaky")
    finally:
        unirun.unregister_backend("leaky")
    assert not list(cache_dir.glob("artifacts/*")) and not list(cache_dir.glob("tmp/*"))


# -- held already: a compile killed at any point leaves nothing that breaks the next load --------

_STAGED = """
import os, sys, time
import unirun
from unirun._reference import ReferenceBackend
import unirun.cache

STOP = sys.argv[1] if len(sys.argv) > 1 else ""

def stage(name):
    if name == STOP:
        print(name, flush=True)
        time.sleep(60)  # the parent SIGKILLs us here

class Staged(ReferenceBackend):
    name = "staged"
    def compile(self, model, target):
        stage("compile-start")
        artifact = super().compile(model, target)  # writes model.onnx, then the manifest
        stage("payload-written")
        return artifact

_replace = os.replace
def replace(src, dst):
    stage("before-rename")
    _replace(src, dst)
    stage("after-rename")
unirun.cache.os.replace = replace
unirun.register_backend(Staged())
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "point", ["compile-start", "payload-written", "before-rename", "after-rename"]
)
def test_a_compile_killed_at_any_point_breaks_no_later_load(
    point: str, cnn_path: Path, tmp_path: Path
) -> None:
    script = tmp_path / "staged.py"
    script.write_text(
        _STAGED + f"unirun.load({str(cnn_path)!r}, backend='staged')\nprint('done', flush=True)\n"
    )
    victim = subprocess.Popen(
        [sys.executable, str(script), point], stdout=subprocess.PIPE, text=True
    )
    try:
        assert victim.stdout is not None and victim.stdout.readline().strip() == point
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.communicate()
    survivor = subprocess.run(
        [
            sys.executable,
            "-c",
            _STAGED
            + f"""
m = unirun.load({str(cnn_path)!r}, backend='staged')
print(m.cache_status)
""",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert survivor.returncode == 0, survivor.stderr
    assert survivor.stdout.strip() == ("hit" if point == "after-rename" else "miss")
