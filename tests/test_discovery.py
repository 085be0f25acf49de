"""Plugin discovery: entry points, broken and incompatible plugins, selection, lazy imports."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import unirun
from unirun import (
    BackendNotFoundError,
    BackendUnavailableError,
    DeviceError,
    PluginIncompatibleError,
    _registry,
)

PLUGINS = {
    "broken_plugin.py": "raise ImportError('libfakeengine.so.3: cannot open shared object file')\n",
    "old_plugin.py": textwrap.dedent("""
        from unirun._reference import ReferenceBackend
        class OldBackend(ReferenceBackend):
            name = "old"
            api_version = 1
            def load(self, artifact, device, cache_dir=None):  # the API 1 signature
                raise AssertionError("never called")
    """),
    "future_plugin.py": textwrap.dedent("""
        from unirun._reference import ReferenceBackend
        class FutureBackend(ReferenceBackend):
            name = "future"
            api_version = 99
    """),
    "absent_plugin.py": textwrap.dedent("""
        from unirun.backend import Probe
        from unirun._reference import ReferenceBackend
        class AbsentBackend(ReferenceBackend):
            name = "absent"
            def probe(self):
                return Probe(False, "needs the FakeEngine SDK: pip install fakeengine")
    """),
    "notabackend_plugin.py": "class Nothing:\n    name = 'nothing'\n",
}


@pytest.fixture
def fake_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on sys.path holding a fake distribution with five bad plugins."""
    for name, code in PLUGINS.items():
        (tmp_path / name).write_text(code)
    info = tmp_path / "unirun_fakes-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: unirun-fakes\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent("""
        [unirun.backends]
        broken = broken_plugin:Backend
        old = old_plugin:OldBackend
        future = future_plugin:FutureBackend
        absent = absent_plugin:AbsentBackend
        nothing = notabackend_plugin:Nothing
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    _registry._reset()
    yield tmp_path
    _registry._reset()


def test_broken_plugins_are_reported_and_others_still_work(
    fake_plugins: Path, cnn_path: Path
) -> None:
    infos = {info.name: info for info in unirun.backends()}
    broken = infos["broken"]
    assert not broken.available and broken.installed
    assert "failed to load" in broken.reason and "libfakeengine.so.3" in broken.reason
    assert broken.plugin_version == "1.0" and broken.install == "pip install -U unirun-fakes"
    assert "pip install -U unirun-fakes" in broken.reason
    assert "does not implement the Backend contract" in infos["nothing"].reason
    assert infos["absent"].reason == "needs the FakeEngine SDK: pip install fakeengine"
    assert infos["reference"].available
    with unirun.load(cnn_path, backend="reference") as model:
        assert model.backend == "reference"
    with pytest.raises(PluginIncompatibleError, match="libfakeengine"):
        unirun.load(cnn_path, backend="broken")
    with pytest.raises(BackendUnavailableError, match="cannot run here: needs the FakeEngine SDK"):
        unirun.load(cnn_path, backend="absent")


def test_incompatible_api_versions_say_what_to_upgrade(fake_plugins: Path, cnn_path: Path) -> None:
    with pytest.raises(
        PluginIncompatibleError,
        match=r"API 1, but this unirun speaks API 2; "
        r"upgrade the plugin: pip install -U unirun-fakes",
    ):
        unirun.load(cnn_path, backend="old")
    with pytest.raises(PluginIncompatibleError, match="upgrade unirun: pip install -U unirun"):
        unirun.load(cnn_path, backend="future")
    info = {i.name: i for i in unirun.backends()}["old"]
    assert not info.available and "contract API 1" in info.reason


def test_unknown_backend_lists_known_ones(cnn_path: Path) -> None:
    with pytest.raises(BackendNotFoundError, match=r"no backend named 'tensorflow'.*reference"):
        unirun.load(cnn_path, backend="tensorflow")
    absent = [i.name for i in unirun.backends() if not i.installed]
    for name in absent:  # known plugins that are not installed say how to install them
        with pytest.raises(BackendNotFoundError, match=f"Install it: pip install .*unirun-{name}"):
            unirun.load(cnn_path, backend=name)


def test_unsupported_device_kind(cnn_path: Path) -> None:
    with pytest.raises(DeviceError, match="does not support device kind 'cuda'; it supports cpu"):
        unirun.load(cnn_path, backend="reference", device="cuda")


def test_env_var_picks_the_backend(cnn_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNIRUN_BACKEND", "reference")
    with unirun.load(cnn_path) as model:
        assert model.backend == "reference"
    monkeypatch.setenv("UNIRUN_BACKEND", "nope")
    with pytest.raises(BackendNotFoundError, match="'nope'"):
        unirun.load(cnn_path)


def test_register_backend_in_process(cnn_path: Path) -> None:
    from unirun._reference import ReferenceBackend

    class Mine(ReferenceBackend):
        name = "mine"

    unirun.register_backend(Mine)
    try:
        assert "mine" in {i.name for i in unirun.backends()}
        with pytest.raises(PluginIncompatibleError, match="already registered"):
            unirun.register_backend(Mine())
        with unirun.load(cnn_path, backend="mine") as model:
            assert model.backend == "mine"
    finally:
        unirun.unregister_backend("mine")


def test_import_unirun_imports_no_engine() -> None:
    code = (
        "import sys, unirun; import unirun.cli; "
        "print(sorted(m for m in ('onnxruntime', 'openvino', 'coremltools', 'tensorrt', "
        "'onnx', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_compile_only_backend_compiles_but_does_not_run(cnn_path: Path, tmp_path: Path) -> None:
    """Core ML on Linux: packages can be built, not run. compile() works, load() says why not."""
    from unirun._reference import ReferenceBackend
    from unirun.backend import Probe

    class CompileOnly(ReferenceBackend):
        name = "compileonly"

        def probe(self) -> Probe:
            return Probe(False, "running needs the FakeOS", "1.0", can_compile=True)

    unirun.register_backend(CompileOnly())
    try:
        info = {i.name: i for i in unirun.backends()}["compileonly"]
        assert (info.available, info.can_compile) == (False, True)
        saved = unirun.compile(cnn_path, backend="compileonly").save(tmp_path / "a")
        assert saved.joinpath("manifest.json").is_file()
        with pytest.raises(
            BackendUnavailableError, match="cannot run here: running needs the FakeOS"
        ):
            unirun.load(cnn_path, backend="compileonly")
        with pytest.raises(BackendUnavailableError, match="running needs the FakeOS"):
            unirun.load(saved)
        with unirun.load(cnn_path) as model:  # never chosen automatically
            assert model.backend != "compileonly"
    finally:
        unirun.unregister_backend("compileonly")
