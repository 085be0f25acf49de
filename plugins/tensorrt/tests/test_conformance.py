"""unirun-tensorrt against the conformance kit. Without TensorRT and a GPU (the dev machines,
CI) the backend declares itself unavailable and every device test skips with that reason; on a
machine with both, the whole kit runs."""

from __future__ import annotations

from unirun.testing.conformance import BackendConformance


class TestTensorRTConformance(BackendConformance):
    backend = "tensorrt"
    engine_modules = ("tensorrt", "cuda")
