"""``unirun new-plugin``: a plugin package made from the shipped template is lint-clean, is
discovered from its source, and passes the conformance kit as an unavailable backend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from unirun._scaffold import new_plugin, template_dir
from unirun.cli import app
from unirun.errors import OptionsError


def test_the_template_is_found() -> None:
    assert (template_dir() / "src" / "unirun_template" / "backend.py").is_file()


@pytest.mark.slow
def test_a_new_plugin_passes_the_kit_from_source(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["new-plugin", "acme", "-o", str(tmp_path / "unirun-acme")])
    assert result.exit_code == 0, result.output
    root = tmp_path / "unirun-acme"
    assert (root / "src" / "unirun_acme" / "backend.py").is_file()
    pyproject = (root / "pyproject.toml").read_text(encoding="utf-8")
    assert 'name = "unirun-acme"' in pyproject and 'acme = "unirun_acme:AcmeBackend"' in pyproject
    code = (root / "src" / "unirun_acme" / "backend.py").read_text(encoding="utf-8")
    assert 'name = "acme"' in code and "class AcmeBackend" in code and "Template" not in code
    lint = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--no-cache",
            "--isolated",
            "--select",
            "E,F,W,B",
            "--line-length",
            "100",
            str(root),
        ],
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0, lint.stdout
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert "failed" not in tests.stdout and "passed" in tests.stdout
    assert "'acme' is unavailable here: no engine is wired into this plugin yet" in (
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
             str(root / "tests"), "-k", "signature"],
            capture_output=True, text=True, cwd=tmp_path,
        ).stdout
    )  # fmt: skip


def test_names_and_places_are_checked(tmp_path: Path) -> None:
    with pytest.raises(OptionsError, match="lowercase word"):
        new_plugin("My-Engine", tmp_path / "x")
    with pytest.raises(OptionsError, match="onnxruntime"):
        new_plugin("onnxruntime", tmp_path / "y")
    (tmp_path / "taken").mkdir()
    with pytest.raises(OptionsError, match="already exists"):
        new_plugin("fresh", tmp_path / "taken")
    result = CliRunner().invoke(app, ["new-plugin", "Bad Name", "-o", str(tmp_path / "z")])
    assert result.exit_code == 2 and not (tmp_path / "z").exists()
