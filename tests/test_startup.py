"""Start-up stays cheap: ``import unirun`` loads no third-party package until a public name is
used, ``unirun --help`` imports no command, and a command imports only its own module. Each
check runs in a fresh interpreter, where ``sys.modules`` says what an import really loaded."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import unirun
from unirun.cli import _lazy

ROOT = Path(__file__).resolve().parents[1]
COMMAND_MODULES = sorted(f"unirun.cli.{module}" for module, _ in _lazy.COMMANDS.values())


def _fresh(code: str, **env_vars: str) -> object:
    """Run ``code`` in a fresh interpreter; it prints one JSON value, returned parsed."""
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1", "PYTHONWARNINGS": "error", **env_vars}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_unirun_loads_no_third_party_package() -> None:
    loaded = _fresh(
        "import sys, json, unirun\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ("
        "'numpy', 'pydantic', 'typer', 'rich', 'onnx', 'filelock', 'platformdirs', 'logging') "
        "or m in ('importlib.metadata', 'unirun.api', 'unirun._registry', 'unirun.options'))))"
    )
    assert loaded == []


def test_every_public_name_resolves_on_first_use_to_its_defining_object() -> None:
    same = _fresh(
        "import importlib, json, unirun\n"
        "print(json.dumps({n: getattr(unirun, n) is getattr(importlib.import_module("
        "'unirun.' + m), n) for n, m in unirun._LAZY.items()}))"
    )
    assert isinstance(same, dict) and same and all(same.values()), same
    assert set(unirun.__all__) <= set(dir(unirun))
    for name in unirun.__all__:
        assert getattr(unirun, name) is not None
    with pytest.raises(AttributeError, match="has no attribute 'lod'"):
        unirun.lod  # type: ignore[attr-defined]  # noqa: B018


def test_the_lazy_table_and_the_type_checking_imports_name_every_public_name() -> None:
    tree = ast.parse((ROOT / "unirun" / "__init__.py").read_text(encoding="utf-8"))
    eager: set[str] = set()
    typed: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            eager |= {alias.asname or alias.name for alias in node.names}
        elif isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom) and imp.module
                typed |= {alias.name: imp.module for alias in imp.names}
    lazy = unirun._LAZY  # type: ignore[attr-defined]
    assert typed == lazy, "unirun/__init__.py: _LAZY and the TYPE_CHECKING imports differ"
    public = (eager - {"annotations", "TYPE_CHECKING", "Any"}) | set(lazy)
    assert public == set(unirun.__all__)


def test_submodules_stay_reachable_as_attributes_after_a_plain_import() -> None:
    name = _fresh("import json, unirun\nprint(json.dumps(unirun.source.graph_inputs.__name__))")
    assert name == "graph_inputs"


def test_help_imports_no_command_and_matches_the_help_of_the_loaded_commands() -> None:
    lazy = _fresh(
        "import contextlib, io, json, sys\nfrom unirun.cli import main\nout = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n    main(['--help'])\n"
        "print(json.dumps([out.getvalue(), sorted(m for m in sys.modules if m in "
        f"{COMMAND_MODULES!r} or m.split('.')[0] in ('numpy', 'pydantic'))]))"
    )
    loaded = _fresh(
        "import contextlib, io, json\nfrom unirun.cli import app, main\nout = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n    main(['--help'])\n"
        "print(json.dumps(out.getvalue()))"
    )
    assert isinstance(lazy, list)
    text, imported = lazy
    assert imported == []
    assert text == loaded  # the table's summaries are the commands' own first help lines
    for name in _lazy.COMMANDS:
        assert f" {name} " in text


def test_a_command_imports_its_own_module_only(tmp_path: Path) -> None:
    imported = _fresh(
        "import contextlib, io, json, sys\nfrom unirun.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    code = main(['cache', 'info', '--json'])\n"
        f"print(json.dumps([code, sorted(m for m in sys.modules if m in {COMMAND_MODULES!r})]))",
        UNIRUN_CACHE_DIR=str(tmp_path),
    )
    assert imported == [0, ["unirun.cli._cache"]]


def test_the_command_table_lists_every_command_with_its_own_summary() -> None:
    from typer.main import get_group

    cli_dir = ROOT / "unirun" / "cli"
    for path in sorted(cli_dir.glob("_*.py")):  # also modules the table does not name
        importlib.import_module(f"unirun.cli.{path.stem}")
    from unirun.cli import app

    commands = get_group(app).commands
    assert list(commands) == list(_lazy.COMMANDS), "add new commands to unirun.cli._lazy.COMMANDS"
    for name, command in commands.items():
        assert not isinstance(command, _lazy.Placeholder), name
        # The root help shows a command's first paragraph with its line breaks.
        first = inspect.cleandoc(command.help or "").split("\n\n")[0].strip()
        assert _lazy.COMMANDS[name][1] == first, f"set COMMANDS[{name!r}] to (…, {first!r})"


def test_pydantic_builds_the_options_validators_on_first_use() -> None:
    built = _fresh(
        "import json\nfrom unirun.options import CompileOptions\n"
        "before = CompileOptions.__pydantic_complete__\n"
        "opts = CompileOptions(shapes={'x': (1, 3)})\n"
        "print(json.dumps([before, CompileOptions.__pydantic_complete__, opts.shapes['x'].max]))"
    )
    assert built == [False, True, [1, 3]]
