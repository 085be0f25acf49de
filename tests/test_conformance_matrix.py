"""docs/support-matrix.md is what docs/gen_support_matrix.py makes of the backends' declared
capabilities and the recorded node-suite results, and those results hold up."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_support_matrix", ROOT / "docs" / "gen_support_matrix.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_support_matrix_is_up_to_date() -> None:
    page = (ROOT / "docs" / "support-matrix.md").read_text(encoding="utf-8")
    assert page == _generator().render(), "run: python docs/gen_support_matrix.py"


def test_recorded_node_suite_runs_are_complete() -> None:
    for name in ("onnxruntime", "openvino", "reference"):
        suite = json.loads(
            (ROOT / "docs" / "data" / f"node-suite-{name}.json").read_text(encoding="utf-8")
        )
        total = len(suite["tests"])
        assert total > 1800, name
        for mode in ("unirun", "native"):
            summary = suite["runs"][mode]["summary"]
            assert summary["tests"] == total
            assert summary["pass"] + summary["fail"] + summary["error"] == total
            assert len(suite["runs"][mode]["not_passed"]) == total - summary["pass"]


def test_onnxruntime_passes_more_through_unirun_than_natively() -> None:
    suite = json.loads(
        (ROOT / "docs" / "data" / "node-suite-onnxruntime.json").read_text(encoding="utf-8")
    )
    runs = suite["runs"]
    assert runs["unirun"]["summary"]["pass"] > runs["native"]["summary"]["pass"]
