"""The conformance kit on the built-in reference backend (onnx.reference)."""

from __future__ import annotations

from typing import ClassVar

from unirun.testing.conformance import BackendConformance


class TestReferenceConformance(BackendConformance):
    backend = "reference"
    xfail: ClassVar[dict[str, str]] = {
        "test_invalid_graph": "onnx.reference finds an undefined value only when it runs the "
        "graph, so the reference backend raises InferenceError at run time instead of "
        "InvalidModelError at compile time",
    }
