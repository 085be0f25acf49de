"""Every program in examples/ runs, as a user would run it, and says what it promised."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
EXPECTED = {
    "quickstart.py": "refused: input 'image' expects float32",
    "artifacts.py": "the artifact's outputs match the reference backend",
    "threads.py": "all give the same outputs, in order",
    "compare_backends.py": "within fp32 tolerances",
}


def _run(script: Path, *args: str, cwd: Path) -> str:
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    result = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_every_example_is_tested() -> None:
    found = {p.name for p in EXAMPLES.glob("*.py")} - {"make_models.py"}
    assert found == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name: str, tmp_path: Path) -> None:
    assert EXPECTED[name] in _run(EXAMPLES / name, cwd=tmp_path)


def test_make_models_rebuilds_the_committed_models_byte_for_byte(tmp_path: Path) -> None:
    copy = tmp_path / "examples"
    copy.mkdir()
    shutil.copy(EXAMPLES / "make_models.py", copy)
    _run(copy / "make_models.py", cwd=tmp_path)
    for model in (EXAMPLES / "models").glob("*.onnx"):
        assert filecmp.cmp(model, copy / "models" / model.name, shallow=False), model.name
