"""Everything GPU-bound about unirun's TensorRT plugin, in one run, on a GPU machine.

    python -m bench.gpu_check [--json OUT.json]

It prints what this machine offers (the plugin's diagnosis), then runs, each reported as
``ran/passed``, ``ran/FAILED`` or ``skipped (reason)``:

* the CUDA-only checks, which need a GPU and cuda-bindings but not TensorRT: checked CUDA
  calls and their errors, growing device buffers, pinned staging, streams, device tensors from
  torch and cupy through DLPack and the CUDA array interface (``test_gpu_cuda.py``);
* the TensorRT integration tests: build and run engines, precision, profiles, the timing cache,
  plan compatibility, data-dependent outputs, concurrency, device inputs (``test_integration.py``);
* the conformance kit against the TensorRT backend (``test_conformance.py``).

Nothing is called verified unless it ran here: a skipped check says why. The exit status is 1
if any check failed, else 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "plugins" / "tensorrt" / "tests"
SUITES = {
    "cuda": TESTS / "test_gpu_cuda.py",
    "tensorrt": TESTS / "test_integration.py",
    "conformance": TESTS / "test_conformance.py",
}


class _Recorder:
    """A pytest plugin keeping each test's outcome and, for skips, the reason."""

    def __init__(self) -> None:
        self.outcomes: dict[str, dict[str, str]] = {}

    def pytest_runtest_logreport(self, report: Any) -> None:
        entry = self.outcomes.setdefault(report.nodeid, {"outcome": "passed", "detail": ""})
        if report.skipped:
            reason = (
                report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            )
            entry.update(outcome="skipped", detail=str(reason).removeprefix("Skipped: "))
        elif report.failed:
            entry.update(outcome="failed", detail=str(report.longrepr).splitlines()[-1][:300])


def _environment() -> dict[str, Any]:
    info: dict[str, Any] = {"python": sys.version.split()[0]}
    try:
        from unirun_tensorrt import TensorRTBackend

        info["diagnosis"] = [str(f) for f in TensorRTBackend().diagnose(None)]
    except Exception as exc:
        info["diagnosis"] = [f"the plugin failed to diagnose: {type(exc).__name__}: {exc}"]
    for module in ("torch", "cupy", "tensorrt", "onnxruntime"):
        try:
            info[module] = __import__(module).__version__
        except Exception as exc:
            info[module] = f"absent ({type(exc).__name__})"
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    env = _environment()
    print("== environment")
    for key, value in env.items():
        for line in value if isinstance(value, list) else [value]:
            print(f"  {key}: {line}")
    results: dict[str, dict[str, dict[str, str]]] = {}
    failed = 0
    for suite, path in SUITES.items():
        recorder = _Recorder()
        pytest.main(
            [str(path), "-qq", "-rN", "-p", "no:randomly", "-p", "no:cacheprovider"],
            plugins=[recorder],
        )
        results[suite] = recorder.outcomes
    print("\n== checks")
    for suite, outcomes in results.items():
        counts = {
            k: sum(o["outcome"] == k for o in outcomes.values())
            for k in ("passed", "failed", "skipped")
        }
        print(f"-- {suite}: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
        skipped: dict[str, list[str]] = {}
        for nodeid, entry in outcomes.items():
            name = nodeid.split("::", 1)[-1]
            if entry["outcome"] == "passed":
                print(f"  ran/passed   {name}")
            elif entry["outcome"] == "failed":
                failed += 1
                print(f"  ran/FAILED   {name}: {entry['detail']}")
            else:
                skipped.setdefault(entry["detail"], []).append(name)
        for reason, names in skipped.items():
            more = " …" if len(names) > 3 else ""
            print(f"  skipped      {len(names)} ({', '.join(names[:3])}{more})")
            print(f"               because: {reason}")
    if args.json:
        args.json.write_text(json.dumps({"environment": env, "results": results}, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
