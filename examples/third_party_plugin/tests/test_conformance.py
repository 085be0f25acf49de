"""The emulator passes unirun's conformance kit on its own device kind."""

from __future__ import annotations

from unirun.testing.conformance import BackendConformance


class TestEmulatorConformance(BackendConformance):
    backend = "emulator"
    engine_modules = ("onnx.reference",)
