"""Strings a model supplies (names, producer, node names, error text) never reach the terminal
as control sequences: a hostile model cannot retitle the terminal, clear it or fake lines."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from rich.console import Console

import unirun
from unirun.cli._app import escape

ORT = any(b.name == "onnxruntime" and b.available for b in unirun.backends())
PAYLOAD = "\x1b]0;PWNED\x07\x1b[2J\x1b[31m\r\nFAKE: all good\u202e\x9b"


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "PYTHONWARNINGS": "error"}
    return subprocess.run(
        [sys.executable, "-m", "unirun", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _hostile_model(path: Path, *, failing: bool = False) -> Path:
    name = f"in{PAYLOAD}"
    nodes = [helper.make_node("Relu", [name], [f"out{PAYLOAD}"], name=f"node{PAYLOAD}")]
    if failing:  # a Reshape that cannot succeed, so the engine's error names the node
        nodes = [
            helper.make_node("Reshape", [name, "bad"], [f"out{PAYLOAD}"], name=f"node{PAYLOAD}")
        ]
    graph = helper.make_graph(
        nodes,
        f"graph{PAYLOAD}",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [2, f"dim{PAYLOAD}"])],
        [helper.make_tensor_value_info(f"out{PAYLOAD}", TensorProto.FLOAT, [2, f"dim{PAYLOAD}"])],
        [helper.make_tensor("bad", TensorProto.INT64, [1], [7])] if failing else [],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17)],
        producer_name=f"producer{PAYLOAD}",
        producer_version=PAYLOAD,
    )
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _assert_clean(result: subprocess.CompletedProcess[str] | str) -> None:
    text = result if isinstance(result, str) else result.stdout + result.stderr
    for control in ("\x1b", "\x07", "\r", "\u202e", "\x9b"):
        assert control not in text, (control, text)
    assert not any(line.startswith("FAKE") for line in text.splitlines()), text
    assert "\\x1b]0;PWNED" in text, text  # shown, visibly escaped


def _printed(markup: str) -> str:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None, highlight=False).print(markup)
    return out.getvalue()


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("a\x1b[2Jb\r\nc", "a\\x1b[2Jb\\r\\nc"),
        ("[bold]x[/]\u202e\x9b\x7f\t", "[bold]x[/]\\u202e\\x9b\\x7f\\t"),
        ("trailing backslash\\", "trailing backslash\\"),
        ("plain ünïcødé ✓ name:0", "plain ünïcødé ✓ name:0"),
    ],
)
def test_escape_shows_control_characters_and_markup(text: str, shown: str) -> None:
    assert _printed(f"[bold]{escape(text)}[/] after") == f"{shown} after\n"


def test_inspect_prints_model_strings_escaped(tmp_path: Path) -> None:
    result = cli("inspect", _hostile_model(tmp_path / "evil.onnx"))
    assert result.returncode == 0, result.stderr
    _assert_clean(result)


@pytest.mark.parametrize("backend", ["reference", "onnxruntime"])
def test_run_prints_model_strings_escaped(tmp_path: Path, backend: str) -> None:
    if backend == "onnxruntime" and not ORT:
        pytest.skip("needs the ONNX Runtime backend")
    path = _hostile_model(tmp_path / "evil.onnx")
    result = cli("run", path, "-b", backend, "--shape", f"in{PAYLOAD}=2x3")
    assert result.returncode == 0, result.stderr
    _assert_clean(result)


@pytest.mark.skipif(not ORT, reason="needs the ONNX Runtime backend")
def test_errors_print_model_strings_escaped(tmp_path: Path) -> None:
    """ONNX Runtime's run-time error names the failing node; unirun's error line shows it
    escaped. (ONNX Runtime's own log line, written to stderr by its C++ logger, is not unirun's
    output: routing engine logs through ``logging`` is another change.)"""
    path = _hostile_model(tmp_path / "evil.onnx", failing=True)
    data: Any = np.ones((2, 3), np.float32)
    np.save(tmp_path / "x.npy", data)
    result = cli("run", path, "-b", "onnxruntime", "-i", f"in{PAYLOAD}={tmp_path / 'x.npy'}")
    assert result.returncode == 1, result.stderr
    error = result.stderr[result.stderr.rindex("error: ") :]
    assert "InferenceError" in error
    _assert_clean(error)
