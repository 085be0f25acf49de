"""``python -m bench.gpu_check`` cannot rot where there is no GPU: it runs, isolates each check
in its own process, and says why each one skipped; a crash or a hang is a result, not the end of
the run. (On a GPU machine the same run executes the checks.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import gpu_check

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_each_check_reports_what_ran_and_why_the_rest_skipped(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.gpu_check",
            "--only",
            "cuda-bindings,device-tensors",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(out.read_text(encoding="utf-8"))
    statuses = {r["name"]: r for r in report["results"]}
    assert set(statuses) == {"cuda-bindings", "device-tensors"}
    assert "== summary" in proc.stdout and "torch:" in "\n".join(report["environment"])
    for result in statuses.values():
        assert result["status"] in ("passed", "skipped"), result
        if result["status"] == "skipped":
            (reason,) = result["skipped"]
            assert reason  # a skip always says why
            assert f"because: {reason}" in proc.stdout
    assert proc.returncode == 0


def test_a_crash_or_a_hang_is_reported_and_the_run_goes_on() -> None:
    crash = gpu_check.Check("crash", "a check that dies", smoke="_crash_for_tests")
    hang = gpu_check.Check("hang", "a check that hangs", smoke="_hang_for_tests")
    assert gpu_check._run_smoke(crash, timeout=60).status == "failed"
    assert gpu_check._run_smoke(hang, timeout=2).status == "timeout"


def test_unknown_check_names_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        gpu_check.main(["--only", "tensorrt,nonsense"])
    assert "unknown check(s): nonsense" in capsys.readouterr().err
