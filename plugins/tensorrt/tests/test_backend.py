"""The plugin as users meet it on a machine without TensorRT or a GPU: listed, unavailable with
the reason and the fix, typed errors from load/compile, a diagnosis naming what is missing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import unirun
from unirun import _registry
from unirun.errors import BackendUnavailableError
from unirun.testing import models
from unirun_tensorrt import TensorRTBackend
from unirun_tensorrt._diagnose import extra_for


@pytest.fixture
def unavailable() -> str:
    probe = TensorRTBackend().probe()
    if probe.available:
        pytest.skip("TensorRT and a GPU are available here")
    return probe.reason


def test_listed_unavailable_with_the_reason(unavailable: str) -> None:
    (info,) = [b for b in unirun.backends() if b.name == "tensorrt"]
    assert info.installed and not info.available
    assert info.reason == unavailable
    assert "TensorRT" in info.reason and "pip install 'unirun-tensorrt[cu1" in info.reason
    assert info.capabilities is TensorRTBackend.capabilities


def test_load_and_compile_raise_backend_unavailable(unavailable: str) -> None:
    for call in (unirun.load, unirun.compile):
        with pytest.raises(BackendUnavailableError, match="backend 'tensorrt' cannot run here"):
            call(models.mlp(), backend="tensorrt", device="cuda")


def test_auto_does_not_pick_an_unavailable_tensorrt(unavailable: str) -> None:
    model = unirun.load(models.mlp(), cache=False)
    assert model.backend != "tensorrt"
    model.close()


def test_diagnosis_names_each_piece_and_the_fix(unavailable: str) -> None:
    findings = TensorRTBackend().diagnose(None)
    names = [f.check for f in findings]
    assert names[0] == "cuda-bindings" and names[-1] == "TensorRT"
    missing = [f for f in findings if not f.ok]
    assert missing and all(f.fix or "GPU" in f.check for f in missing)


def test_doctor_prints_the_plugins_diagnosis(unavailable: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "unirun", "doctor", "-b", "tensorrt", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 3
    checks = {c["name"]: c for c in json.loads(out.stdout)["checks"]}
    assert (
        checks["TensorRT"]["status"] == "fail" and "unirun-tensorrt[" in checks["TensorRT"]["fix"]
    )


def test_cli_lists_the_backend(unavailable: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "unirun", "backends", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    listed = {b["name"]: b for b in json.loads(out.stdout)}
    assert listed["tensorrt"]["available"] is False
    assert "TensorRT" in listed["tensorrt"]["reason"]


def test_extra_follows_the_driver() -> None:
    assert extra_for("13.0") == "cu13"
    assert extra_for("12.8") == "cu12"
    assert extra_for(None) == "cu13"
    assert _registry.KNOWN_PLUGINS["tensorrt"] == "pip install 'unirun-tensorrt[cu13]'"


def test_device_io_is_declared_and_its_method_fits_the_contract() -> None:
    """The core admits the backend with device I/O on cuda, and a context's ``infer_device``
    has the signature the core calls (checked here without a GPU; it runs in
    ``test_integration.py::test_device_tensors_in_and_out_without_host_copies``)."""
    from unirun._admission import capabilities_problem, device_io_problem
    from unirun_tensorrt.backend import TensorRTContext

    backend = TensorRTBackend()
    assert backend.capabilities.device_io == ("cuda",)
    assert capabilities_problem(backend.capabilities) is None
    context = TensorRTContext.__new__(TensorRTContext)
    assert device_io_problem(context) is None
    context._context = None
    with pytest.raises(unirun.ModelClosedError):
        context.infer_device({}, "device")
