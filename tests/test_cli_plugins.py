"""How the CLI treats plugins it cannot fully trust: another contract API, an operator check that
raises, a backend that needs shape bounds. In-process (``unirun.cli.main``) with backends
registered for the test, since a subprocess cannot see them."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import unirun
from unirun import Capabilities, Device, DeviceInfo, Probe
from unirun.cli import main
from unirun.source import OnnxModel

CNN = Path(__file__).resolve().parents[1] / "examples" / "models" / "tiny_cnn.onnx"


class _Stub:
    api_version = unirun.API_VERSION
    options_model = None

    def __init__(self, name: str, **caps: Any) -> None:
        self.name = name
        self.capabilities = Capabilities(device_kinds=("cpu",), **caps)

    def probe(self) -> Probe:
        return Probe(True, "", "9.9")

    def devices(self) -> list[DeviceInfo]:
        return [DeviceInfo(Device("cpu"), "stub cpu")]

    def compile(self, model: Any, request: Any) -> Any:
        raise NotImplementedError

    def load(self, request: Any) -> Any:
        raise NotImplementedError


class _OldStub(_Stub):
    api_version = unirun.API_VERSION + 1


class _BrokenCheck(_Stub):
    def unsupported_ops(
        self, model: OnnxModel, device: Device, shapes: Any
    ) -> Sequence[tuple[str, str]]:
        raise RuntimeError("registry unreadable")


@pytest.fixture
def stubs() -> Iterator[None]:
    # A factory is checked when first used (as an installed plugin is), so the CLI gets to
    # report the plugin speaking another contract API; objects are checked at registration.
    unirun.register_backend(lambda: _OldStub("newer_api"), name="newer_api")  # type: ignore[arg-type]
    backends = [_BrokenCheck("broken_check"), _Stub("bounded", dynamic_shapes="bounded")]
    for backend in backends:
        unirun.register_backend(backend)  # type: ignore[arg-type]
    yield
    for name in ("newer_api", *(b.name for b in backends)):
        unirun.unregister_backend(name)


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


@pytest.mark.usefixtures("stubs")
def test_a_plugin_speaking_another_api_is_listed_and_fails_doctor(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = _run(capsys, "backends", "--json")
    entry = next(b for b in json.loads(out) if b["name"] == "newer_api")
    assert code == 0 and not entry["available"] and entry["api_version"] is None
    assert (
        f"contract API {unirun.API_VERSION + 1}" in entry["reason"]
        and "pip install -U unirun" in entry["reason"]
    )
    code, out = _run(capsys, "doctor", "-b", "newer_api", "--json")
    assert code == 3
    (check,) = [c for c in json.loads(out)["checks"] if c["name"] == "backend newer_api"]
    assert check["status"] == "fail" and "contract API" in check["detail"]


@pytest.mark.usefixtures("stubs")
def test_inspect_survives_a_failing_operator_check_and_notes_shape_needs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = _run(capsys, "inspect", str(CNN), "--json")
    assert code == 0
    verdicts = {v["backend"]: v for v in json.loads(out)["backends"]}
    assert "newer_api" not in verdicts  # not available: not asked
    broken = verdicts["broken_check"]
    assert broken["verdict"] == "unknown"
    assert broken["notes"][0] == "operator check failed: RuntimeError: registry unreadable"
    assert "needs shape bounds (--shape) for image" in verdicts["bounded"]["notes"]
