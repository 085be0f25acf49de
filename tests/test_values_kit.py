"""The value-kinds conformance tests (unirun.testing.conformance_values) against the real
engines: ONNX Runtime and the reference backend carry sequences, maps and optionals; OpenVINO
refuses them at compile time. Wired here the way the kit wires its standard tests: one engine
per device kind, ``value_kind`` parametrized."""

from __future__ import annotations

import json
from pathlib import Path

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


#: The node-suite cases with sequence or optional inputs/outputs.
VALUE_CASES = (
    r"^test_(identity_opt|identity_sequence|if_opt|if_seq|loop13_seq|loop16_seq_none|"
    r"optional_.*|sequence_insert_.*|sequence_map_.*|split_to_sequence_.*)$"
)


@pytest.mark.parametrize("backend", ["onnxruntime", "reference"])
def test_node_suite_value_cases_pass_wherever_the_engine_passes(backend: str) -> None:
    """Through unirun, every sequence/optional case of the ONNX node suite that the engine
    passes on its own passes too (onnx.backend.test, run live)."""
    from unirun.testing.onnx_backend import native_backend, node_cases, onnx_backend, run_case

    cases = node_cases(VALUE_CASES)
    assert len({c.name for c in cases}) >= 28
    ours, theirs = onnx_backend(backend), native_backend(backend)
    lost = []
    for case in cases:
        native = run_case(theirs, case)
        if native.status == "pass":
            outcome = run_case(ours, case)
            if outcome.status != "pass":
                lost.append(f"{case.name}: {outcome.stage}: {outcome.message}")
    assert not lost, "\n".join(lost)


@pytest.mark.parametrize("backend", ["onnxruntime", "reference"])
def test_recorded_node_suite_runs_lose_no_case(backend: str) -> None:
    """docs/data (regenerated with ``python docs/gen_support_matrix.py --run``): nothing the
    engine passes natively fails through unirun."""
    root = Path(__file__).resolve().parents[1]
    suite = json.loads(
        (root / "docs" / "data" / f"node-suite-{backend}.json").read_text(encoding="utf-8")
    )
    assert suite["only_native_passes"] == []
