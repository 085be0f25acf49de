"""The conformance kit on the built-in reference backend (onnx.reference)."""

from __future__ import annotations

from unirun.testing.conformance import BackendConformance


class TestReferenceConformance(BackendConformance):
    backend = "reference"
