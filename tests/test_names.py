"""Names users type: backend names in any case with a suggestion for typos, the origin of a name
that came from UNIRUN_BACKEND, plugin option keys, and ``cpu:0``."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

import unirun
from unirun import BackendNotFoundError, Device, DeviceError, OptionsError
from unirun._reference import ReferenceBackend


def test_backend_names_match_in_any_case(cnn_path: Path) -> None:
    with unirun.load(cnn_path, backend="Reference") as model:
        assert model.backend == "reference"
    art = unirun.compile(cnn_path, backend="REFERENCE")
    assert art.manifest.backend == "reference"
    with unirun.load(art, backend="ReFeReNcE") as model:
        assert model.backend == "reference"


@pytest.mark.parametrize(
    ("typo", "meant"), [("refernce", "reference"), ("onnxrutime", "onnxruntime")]
)
def test_a_typo_gets_a_suggestion(cnn_path: Path, typo: str, meant: str) -> None:
    with pytest.raises(
        BackendNotFoundError,
        match=f"no backend named '{typo}' is installed. Did you mean '{meant}'?",
    ):
        unirun.load(cnn_path, backend=typo)


def test_a_name_from_the_environment_says_so(
    cnn_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNIRUN_BACKEND", "refernce")
    with pytest.raises(BackendNotFoundError) as caught:
        unirun.load(cnn_path)
    message = str(caught.value)
    assert "Did you mean 'reference'?" in message
    assert (
        "the backend name 'refernce' came from the UNIRUN_BACKEND environment variable" in message
    )
    monkeypatch.setenv("UNIRUN_BACKEND", "Reference")
    with unirun.load(cnn_path) as model:
        assert model.backend == "reference"


class _Options(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    workers: int = 1
    spin: bool = False


class _WithOptions(ReferenceBackend):
    name = "withoptions"
    options_model = _Options


def test_an_unknown_plugin_option_lists_the_valid_keys(cnn_path: Path) -> None:
    unirun.register_backend(_WithOptions())  # type: ignore[arg-type]
    try:
        with pytest.raises(OptionsError) as caught:
            unirun.load(cnn_path, backend="withoptions", options={"wrokers": 2})
        assert "wrokers: Extra inputs are not permitted (valid keys: spin, workers)" in str(
            caught.value
        )
        with unirun.load(cnn_path, backend="withoptions", options={"workers": 2}) as model:
            assert model.options.backend_options == {"workers": 2, "spin": False}
    finally:
        unirun.unregister_backend("withoptions")


def test_cpu_0_is_the_cpu(cnn_path: Path) -> None:
    assert Device.parse("cpu:0") == Device("cpu", 0) == Device("cpu")
    assert str(Device.parse("CPU:0")) == "cpu"
    with unirun.load(cnn_path, backend="reference", device="cpu:0") as model:
        assert model.device == Device("cpu")
    with pytest.raises(DeviceError, match="there is one host CPU: write 'cpu'"):
        Device.parse("cpu:1")
