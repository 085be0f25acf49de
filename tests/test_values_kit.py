"""The value-kinds conformance tests (unirun.testing.conformance_values) against the real
engines: ONNX Runtime and the reference backend carry sequences, maps and optionals; OpenVINO
refuses them at compile time. Wired here the way the kit wires its standard tests: one engine
per device kind, ``value_kind`` parametrized."""

from __future__ import annotations

import pytest

from unirun.device import Device
from unirun.testing._support import backend_object, status
from unirun.testing.conformance import Engine
from unirun.testing.conformance_values import VALUE_PARAMS, ValueKindsConformance


class _Wired(ValueKindsConformance):
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        for name, values in VALUE_PARAMS.items():
            if name in metafunc.fixturenames:
                metafunc.parametrize(name, values)

    @pytest.fixture
    def engine(self) -> Engine:
        probe, devices = status(self.backend)
        if not probe.available:
            pytest.skip(f"backend {self.backend!r} is unavailable here: {probe.reason}")
        cpu = next(i.device for i in devices if i.device.kind in ("cpu", "auto"))
        caps = backend_object(self.backend, None).capabilities
        return Engine(self.backend, Device.parse(str(cpu)), caps)


class TestOnnxRuntimeValueKinds(_Wired):
    backend = "onnxruntime"


class TestReferenceValueKinds(_Wired):
    backend = "reference"


class TestOpenVinoValueKinds(_Wired):
    backend = "openvino"


def test_wiring_covers_every_test() -> None:
    tests = [n for n in vars(ValueKindsConformance) if n.startswith("test_")]
    assert tests == [
        "test_value_kind",
        "test_zipmap_classifier",
        "test_value_feeds_are_checked",
        "test_value_kinds_survive_an_artifact",
    ]
