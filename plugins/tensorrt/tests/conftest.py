"""Fixtures that skip, with the exact reason, tests needing what this machine lacks."""

from __future__ import annotations

import functools

import pytest

from unirun_tensorrt import TensorRTBackend
from unirun_tensorrt._diagnose import Finding, findings


@functools.cache
def _findings() -> dict[str, Finding]:
    return {f.name: f for f in findings()}


def _reason(*names: str) -> str | None:
    missing = [f for f in _findings().values() if f.name in names and not f.ok]
    return "; ".join(f"{f.name}: {f.detail}" for f in missing) or None


@pytest.fixture
def gpu() -> int:
    """A CUDA GPU through cuda-bindings (TensorRT not needed): its ordinal."""
    reason = _reason("cuda-bindings", "NVIDIA driver", "GPU")
    if reason:
        pytest.skip(f"needs a CUDA GPU: {reason}")
    return 0


@pytest.fixture
def tensorrt() -> None:
    """TensorRT and a CUDA GPU, as the backend's probe sees them."""
    probe = TensorRTBackend().probe()
    if not probe.available:
        pytest.skip(f"needs TensorRT and a CUDA GPU: {probe.reason}")


@pytest.fixture
def no_driver() -> None:
    """This machine has cuda-bindings but no NVIDIA driver (every CUDA call fails)."""
    found = _findings()
    if not found["cuda-bindings"].ok:
        pytest.skip(f"needs cuda-bindings: {found['cuda-bindings'].detail}")
    if found.get("NVIDIA driver") is None or found["NVIDIA driver"].ok:
        pytest.skip("this machine has an NVIDIA driver; the no-driver error path cannot happen")
