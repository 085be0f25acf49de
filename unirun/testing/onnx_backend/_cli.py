"""``python -m unirun.testing.onnx_backend``: run the suite through unirun and natively, write
one JSON report."""

from __future__ import annotations

import argparse
import json
import platform
import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._adapters import native_backend, onnx_backend
from ._corpus import SAMPLE, node_cases
from ._running import Outcome, run_suite, summarize

__all__ = ["main", "report"]


def _versions(name: str) -> dict[str, str | None]:
    import onnx

    import unirun

    info = next((i for i in unirun.backends() if i.name == name), None)
    return {
        "onnx": onnx.__version__,
        "unirun": unirun.__version__,
        "engine": info.version if info else None,
        "plugin": info.plugin_version if info else None,
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}",
    }


def report(
    name: str, device: str, runs: Mapping[str, tuple[dict[str, Outcome], float]]
) -> dict[str, Any]:
    """The JSON document the command line writes: versions, every test's name, then per run a
    summary, the time it took and the outcome of each test that did not pass; with two runs,
    the tests only one of them passes."""
    names = sorted({test for results, _ in runs.values() for test in results})
    doc: dict[str, Any] = {
        "suite": "onnx.backend.test node tests",
        "backend": name,
        "device": device,
        "versions": _versions(name),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tests": names,
        "runs": {},
    }
    for mode, (results, seconds) in runs.items():
        doc["runs"][mode] = {
            "summary": summarize(results),
            "seconds": round(seconds, 1),
            "not_passed": {
                k: v.to_json() for k, v in sorted(results.items()) if v.status != "pass"
            },
        }
    if "unirun" in runs and "native" in runs:
        ours, theirs = runs["unirun"][0], runs["native"][0]

        def passed(results: Mapping[str, Outcome]) -> set[str]:
            return {k for k, v in results.items() if v.status == "pass"}

        doc["only_unirun_passes"] = sorted(passed(ours) - passed(theirs))
        doc["only_native_passes"] = sorted(passed(theirs) - passed(ours))
    return doc


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m unirun.testing.onnx_backend",
        description="Run the ONNX node-test suite through a unirun backend (and natively).",
    )
    parser.add_argument("--backend", "-b", required=True, help="unirun backend name")
    parser.add_argument("--device", "-d", default="cpu", help="unirun device (default cpu)")
    parser.add_argument(
        "--native", action="store_true", help="also run the engine's own Python API"
    )
    parser.add_argument("--native-only", action="store_true", help="run only the engine's own API")
    parser.add_argument("-k", dest="pattern", help="only tests whose name matches this regex")
    parser.add_argument("--sample", action="store_true", help="only the representative sample")
    parser.add_argument("--out", "-o", type=Path, help="JSON file to write")
    parser.add_argument("--verbose", "-v", action="store_true", help="print every test")
    args = parser.parse_args(argv)

    pattern: str | re.Pattern[str] | None = SAMPLE if args.sample else args.pattern
    cases = node_cases(pattern)
    modes: dict[str, Any] = {}
    if not args.native_only:
        modes["unirun"] = onnx_backend(args.backend)
    if args.native or args.native_only:
        modes["native"] = native_backend(args.backend)

    def progress(test: str, outcome: Outcome) -> None:
        if args.verbose:
            print(f"{test}: {outcome.status} {outcome.message}", flush=True)

    runs: dict[str, tuple[dict[str, Outcome], float]] = {}
    for mode, backend in modes.items():
        started = time.perf_counter()
        device = args.device
        results = run_suite(backend, cases, device, progress)
        runs[mode] = (results, time.perf_counter() - started)
        counts = summarize(results)
        print(
            f"{args.backend} {mode:>6}: {counts['pass']} passed, {counts['fail']} failed, "
            f"{counts['error']} errors of {counts['tests']} in {runs[mode][1]:.1f}s",
            flush=True,
        )
    doc = report(args.backend, args.device, runs)
    out = args.out or Path("node-suite-results") / f"{args.backend}-{args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0
