"""unirun-coreml against the conformance kit. Off macOS the backend reports itself unavailable
(it can only compile there), so the engine tests skip with that reason; the contract tests that
need no engine still run."""

from __future__ import annotations

from unirun.testing.conformance import BackendConformance


class TestCoreMLConformance(BackendConformance):
    backend = "coreml"
    devices = ("cpu", "gpu", "ane")
    engine_modules = ("coremltools",)
