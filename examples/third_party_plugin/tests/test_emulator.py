"""What the example plugin adds to unirun: a device kind, an identity, its options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import unirun
from unirun.testing import models


@pytest.fixture
def cnn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("UNIRUN_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "cnn.onnx"
    onnx.save(models.conv_net(size=8), str(path))
    return path


def test_runs_on_its_own_device_kind_like_the_reference(cnn: Path) -> None:
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    with unirun.load(cnn, device="emu") as model, unirun.load(cnn, backend="reference") as ref:
        assert (model.backend, str(model.device)) == ("emulator", "emu:0")
        assert model.artifact.manifest.device_identity == "emu-isa-1"
        np.testing.assert_array_equal(model(x)["logits"], ref(x)["logits"])


def test_the_device_kind_is_described(cnn: Path) -> None:
    unirun.backends()
    assert unirun.Device.parse("emu:0") == unirun.Device("emu", 0)
    info = {i.name: i for i in unirun.backends()}["emulator"]
    assert [str(d.device) for d in info.devices] == ["emu:0"]


def test_an_artifact_for_another_isa_is_refused(cnn: Path, tmp_path: Path) -> None:
    saved = unirun.compile(cnn, backend="emulator", device="emu").save(tmp_path / "prog")
    header = saved / "program.json"
    header.write_text(header.read_text(encoding="utf-8").replace("emu-isa-1", "emu-isa-0"))
    with pytest.raises(unirun.ArtifactError, match="checksum"):  # the core notices first
        unirun.load(saved)


def test_check_nan_option(cnn: Path) -> None:
    x = np.full((1, 3, 8, 8), np.nan, np.float32)
    options = {"check_nan": True}
    with (
        unirun.load(cnn, backend="emulator", device="emu", options=options) as m,
        pytest.raises(unirun.InferenceError, match="holds NaN"),
    ):
        m(x)
    with pytest.raises(unirun.OptionsError, match="lanes"):
        unirun.load(cnn, backend="emulator", device="emu", options={"lanes": 0})
