"""Every CLI table states the precision the engine really computes in, with the request when the
hardware changed it; compare picks tolerances from the real one; --strict-precision refuses.
In-process, with a registered backend that reports computing fp32 when asked for fp16 (as
OpenVINO does on a CPU without fp16 units)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import unirun
from unirun._reference import ReferenceBackend
from unirun.cli import main
from unirun.cli._agree import TOLERANCES

CNN = Path(__file__).resolve().parents[1] / "examples" / "models" / "tiny_cnn.onnx"


class Substituting(ReferenceBackend):
    name = "subst"
    capabilities = dataclasses.replace(ReferenceBackend.capabilities, precisions=("fp32", "fp16"))

    def compile(self, model: Any, request: Any) -> Any:
        return dataclasses.replace(super().compile(model, request), precision="fp32")


@pytest.fixture(autouse=True)
def subst() -> Iterator[None]:
    unirun.register_backend(Substituting())  # type: ignore[arg-type]
    yield
    unirun.unregister_backend("subst")


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_compare_uses_the_tolerances_of_the_precision_really_computed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "compare", CNN, "-b", "subst,reference", "-p", "fp16", "--json")
    (row,) = json.loads(out)["results"]
    assert code == 0 and (row["precision"], row["requested_precision"]) == ("fp32", "fp16")
    assert (row["rtol"], row["tolerance"]) == (TOLERANCES["fp32"][0], "fp32")
    code, out, _ = run(capsys, "compare", CNN, "-b", "subst,reference", "-p", "fp16")
    assert code == 0 and "subst (cpu, fp16 requested → fp32)" in out


def test_strict_precision_refuses_the_substitution_in_every_command(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run(
        capsys,
        "compare",
        CNN,
        "-b",
        "subst,reference",
        "-p",
        "fp16",
        "--strict-precision",
        "--json",
    )
    (row,) = json.loads(out)["results"]
    assert code == 3 and "strict_precision=True refuses" in row["error"]
    for command in (["run"], ["bench", "-n", "2"], ["compile", "-o", str(tmp_path / "a")]):
        code, out, err = run(
            capsys, *command, CNN, "-b", "subst", "-p", "fp16", "--strict-precision"
        )
        assert code == 1 and "computes in fp32" in out + err, (command, out, err)
    assert not (tmp_path / "a").exists()


def test_run_bench_and_compile_show_what_ran_and_what_was_asked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run(capsys, "run", CNN, "-b", "subst", "-p", "fp16")
    assert code == 0 and "subst on cpu · fp16 requested → fp32 ·" in out
    code, out, _ = run(capsys, "run", CNN, "-b", "subst", "-p", "fp16", "--json")
    assert (json.loads(out)["precision"], json.loads(out)["requested_precision"]) == (
        "fp32",
        "fp16",
    )
    code, out, _ = run(
        capsys, "bench", CNN, "-b", "subst,reference", "-n", "2", "-p", "fp16", "--json"
    )
    subst, reference = json.loads(out)
    assert code == 1 and (subst["precision"], subst["requested_precision"]) == ("fp32", "fp16")
    assert "does not support precision 'fp16'" in reference["error"]  # its own row
    code, out, _ = run(capsys, "compile", CNN, "-b", "subst", "-p", "fp16", "-o", tmp_path / "b")
    assert code == 0 and "(fp16 requested → fp32)" in out
    code, out, _ = run(
        capsys, "compile", CNN, "-b", "subst", "-p", "fp16", "-o", tmp_path / "c", "--json"
    )
    assert json.loads(out)["precision"] == "fp32"
