"""The documentation builds without a warning, its quick start runs as written, and the CLI
reference covers every command and option the CLI has."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
QUICKSTART = DOCS / "quickstart.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def _blocks(page: Path, language: str) -> list[str]:
    return [
        body for lang, body in FENCE.findall(page.read_text(encoding="utf-8")) if lang == language
    ]


@pytest.fixture
def checkout_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory laid out like the repository root (example models only), as the cwd."""
    shutil.copytree(ROOT / "examples" / "models", tmp_path / "examples" / "models")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_docs_build_strict(tmp_path: Path) -> None:
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python"):
        pytest.importorskip(module, reason="the docs tools come with requirements-dev.txt")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    assert "WARNING" not in log, log
    api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    assert "through the cache" in api  # the docstring of unirun.load made it into the page
    assert ":class:" not in api  # the hook turned Sphinx roles into code


def test_quickstart_python_blocks_run_as_written(checkout_copy: Path) -> None:
    blocks = _blocks(QUICKSTART, "python")
    assert len(blocks) >= 5
    namespace: dict[str, object] = {"__name__": "__quickstart__"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for number, block in enumerate(blocks, 1):
            exec(compile(block, f"quickstart.md python block {number}", "exec"), namespace)
    printed = out.getvalue()
    assert "onnxruntime cpu" in printed and "(1, 10)" in printed and "(8, 10)" in printed
    assert "input 'image' expects float32[N, 3, 32, 32], got dtype float64" in printed
    assert (checkout_copy / "tiny_cnn.unirun" / "manifest.json").is_file()


def test_quickstart_commands_run_as_written(checkout_copy: Path) -> None:
    commands = [
        shlex.split(line)
        for block in _blocks(QUICKSTART, "bash")
        for line in block.splitlines()
        if line.startswith("unirun ")
    ]
    assert ["unirun", "backends"] in commands
    assert ["unirun", "run", "examples/models/tiny_cnn.onnx"] in commands
    for command in commands:
        result = subprocess.run(
            [sys.executable, "-m", "unirun", *command[1:]],
            capture_output=True,
            text=True,
            cwd=checkout_copy,
        )
        assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}{result.stderr}"


def test_cli_reference_covers_every_command_and_option() -> None:
    from typer.main import get_command

    from unirun.cli import app

    page = (DOCS / "cli.md").read_text(encoding="utf-8")
    missing = []
    stack = [("", get_command(app))]
    while stack:
        prefix, command = stack.pop()
        for name, sub in getattr(command, "commands", {}).items():
            path = f"{prefix} {name}".strip()
            if hasattr(sub, "commands"):
                stack.append((path, sub))
                continue
            if f"unirun {path}" not in page:
                missing.append(f"command {path}")
            for param in sub.params:
                for flag in [*param.opts, *getattr(param, "secondary_opts", [])]:
                    if flag.startswith("-") and flag not in page:
                        missing.append(f"{path} {flag}")
    assert not missing, f"docs/cli.md does not mention: {', '.join(missing)}"
    for code in ("| 0 |", "| 1 |", "| 2 |", "| 3 |"):
        assert code in page


def test_every_page_is_in_the_nav() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    listed = set(re.findall(r":\s*([\w/.-]+\.md)\s*$", config, re.M))
    assert pages == listed, f"not in the nav: {pages - listed}; missing files: {listed - pages}"


def test_the_contract_page_lists_every_class_of_the_contract() -> None:
    """docs/api/backend.md names the members of ``unirun.backend`` (most are re-exported from
    private modules, so the page sets their order): a new class must be added there."""
    import inspect

    import unirun.backend as contract

    page = (DOCS / "api" / "backend.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\s+- (\w+)\s*$", page, re.M))
    classes = {
        name
        for name, value in vars(contract).items()
        if inspect.isclass(value)
        and (name in contract.__all__ or value.__module__ == contract.__name__)
    }
    assert classes <= listed, f"docs/api/backend.md does not list {sorted(classes - listed)}"
