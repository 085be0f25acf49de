"""The benchmark harness cannot rot: ``python -m bench.report --quick`` runs every benchmark and
writes every section of the performance page, and the committed page has them all. Nothing
here asserts a timing: the numbers are for people to read (docs/performance.md)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "performance.md"
COMMAND = "python -m bench.report --write docs/performance.md"
SECTIONS = ("{#hot-path}", "{#import}", "{#cli}", "{#cached-load}")
ALWAYS = (
    "`import numpy, pydantic`",
    "`import unirun`",
    "`import unirun; unirun.load`",
    "`unirun --help`",
    "`unirun backends`",
    "python -X importtime",
    "**cnn**",
    "**large**",
    "logical CPUs",
)
ROWS = {
    "onnxruntime": (
        "native: InferenceSession.run",
        "executable.infer(dict)",
        "model(dict)",
        "model(list)",
        "model(array)",
        "`InferenceSession(path)` + run",
    ),
    "openvino": (
        "native: InferRequest.infer",
        "native: tensor API",
        "`compile_model(path)` + infer",
        "`import_model(blob)` + infer",
    ),
    "onnx": ("`ReferenceEvaluator(path)` + run", "unirun: `load(path)` (cache hit) + call"),
}


@pytest.mark.slow
def test_the_quick_report_runs_every_benchmark_and_writes_every_section(tmp_path: Path) -> None:
    page = tmp_path / "performance.md"
    done = subprocess.run(
        [sys.executable, "-m", "bench.report", "--quick", "--write", str(page)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "UNIRUN_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    text = page.read_text(encoding="utf-8")
    assert COMMAND in text and "--quick" in text
    expected = [*SECTIONS, *ALWAYS]
    for module, rows in ROWS.items():
        if importlib.util.find_spec(module) is not None:
            expected += rows
    missing = [item for item in expected if item not in text]
    assert not missing, f"the quick report lacks {missing}:\n{text}"
    assert not re.search(r"\bnan\b", text), "a figure came out as NaN"


def test_the_committed_performance_page_has_every_section_and_says_how_to_regenerate() -> None:
    text = PAGE.read_text(encoding="utf-8")
    assert COMMAND in text
    assert "smoke run" not in text.split("Measured on:")[1], "the page holds a --quick run"
    missing = [item for item in (*SECTIONS, *ALWAYS) if item not in text]
    assert not missing, f"regenerate docs/performance.md ({COMMAND}); it lacks {missing}"


def test_an_unknown_section_is_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.report", "--only", "hot-path,warp-drive"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "unknown section(s) warp-drive" in done.stderr
