"""Values that are not tensors in the ONNX node suite: through unirun, ONNX Runtime and the
reference backend pass every sequence/optional case they pass natively. (The kit's own
value-kind tests, ``unirun.testing.conformance.value_kinds``, run in each plugin's conformance
class.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unirun.testing.conformance import BackendConformance


def test_the_kit_carries_the_value_kind_tests() -> None:
    assert {
        "test_value_kind",
        "test_zipmap_classifier",
        "test_value_feeds_are_checked",
        "test_value_kinds_survive_an_artifact",
    } <= set(BackendConformance._standard)


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
