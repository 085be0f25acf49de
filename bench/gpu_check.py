"""Every GPU-bound check of unirun in one run, on a GPU machine.

    python -m bench.gpu_check [--only NAME[,NAME]] [--timeout SECONDS] [--json OUT.json]

Run from the repository root. Each check runs in its own process with a time limit, so a crash
or a hang in one (a CUDA fault, a driver problem) is reported and the next one still runs. At
the end a summary says, per check, what ran and passed, what failed, and what was skipped and
why; nothing is called verified unless it ran here. The exit status is 1 if any check failed,
errored or timed out, else 0.

Smoke checks (a few seconds each; they need only numpy and the module named):

* ``cuda-bindings``: device count and properties, ``cudaMalloc``, host↔device copies on a
  stream, events, through ``cuda.bindings.runtime``;
* ``dlpack-torch`` / ``dlpack-cupy``: CUDA tensors into ``unirun.device_tensor.from_object``
  (pointer, shape, dtype, device, stream order from a side stream) and back out through
  ``torch.from_dlpack`` / ``cupy.from_dlpack`` without a copy.

Test suites (pytest; they need unirun's dependencies — numpy, onnx, ml_dtypes, pydantic,
platformdirs, filelock, typer, rich — and skip each test whose hardware or library is absent):

* ``device-tensors``: ``tests/test_device_tensor_cuda.py``;
* ``cuda``: the TensorRT plugin's CUDA layer (``plugins/tensorrt/tests/test_gpu_cuda.py``);
* ``onnxruntime-cuda``: device tensors through ONNX Runtime's I/O binding and a CUDA session
  (``plugins/onnxruntime/tests/test_iobinding.py``, and ``test_cuda_runs_on_cuda`` in
  ``test_onnxruntime.py``): the CUDA half needs an onnxruntime-gpu build;
* ``tensorrt``: build and run engines, precision, profiles, timing cache, compatibility,
  device tensors in and out (``plugins/tensorrt/tests/test_integration.py``);
* ``tensorrt-conformance``: the conformance kit against the TensorRT backend.

The plugins need not be installed: their ``src`` folders are put on ``PYTHONPATH`` and the
backends registered in-process when no installed plugin provides them. On a machine without
network access, bring the missing dependencies as wheels for its Python and install them with
``pip install --no-index --find-links WHEELS onnx ml_dtypes pydantic platformdirs filelock typer
rich pytest`` (made elsewhere with ``pip download --only-binary=:all: --python-version 3.X
--platform manylinux2014_x86_64 -d WHEELS ...``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_SOURCES = [ROOT / "plugins" / name / "src" for name in ("onnxruntime", "tensorrt")]


@dataclass
class Check:
    name: str
    what: str
    smoke: str | None = None  # a function of this module, run in a child process
    tests: tuple[str, ...] = ()  # pytest node ids, relative to ROOT


CHECKS = [
    Check("cuda-bindings", "cuda.bindings memory, copies, streams, events", smoke="smoke_cuda"),
    Check("dlpack-torch", "torch CUDA tensors through unirun.device_tensor", smoke="smoke_torch"),
    Check("dlpack-cupy", "cupy arrays through unirun.device_tensor", smoke="smoke_cupy"),
    Check(
        "device-tensors",
        "unirun.device_tensor with torch and cupy CUDA tensors",
        tests=("tests/test_device_tensor_cuda.py",),
    ),
    Check(
        "cuda",
        "the TensorRT plugin's CUDA layer (buffers, pinned staging, streams, errors)",
        tests=("plugins/tensorrt/tests/test_gpu_cuda.py",),
    ),
    Check(
        "onnxruntime-cuda",
        "ONNX Runtime I/O binding; CUDA sessions with device tensors in and out",
        tests=(
            "plugins/onnxruntime/tests/test_iobinding.py",
            "plugins/onnxruntime/tests/test_onnxruntime.py::test_cuda_runs_on_cuda",
        ),
    ),
    Check(
        "tensorrt",
        "TensorRT engines built and run, device tensors in and out",
        tests=("plugins/tensorrt/tests/test_integration.py",),
    ),
    Check(
        "tensorrt-conformance",
        "the conformance kit against the TensorRT backend",
        tests=("plugins/tensorrt/tests/test_conformance.py",),
    ),
]


@dataclass
class Result:
    name: str
    status: str  # passed, failed, skipped, error, timeout
    seconds: float
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> tests
    detail: str = ""


# -- smoke checks (run in a child process; print lines, raise on failure) -------------------------


class Skip(Exception):
    """This check cannot run here; the message says why."""


def smoke_cuda() -> None:
    import numpy as np

    try:
        from cuda.bindings import runtime as rt
    except ImportError as exc:
        raise Skip(f"cuda-bindings is not installed ({exc})") from None

    def call(fn: Any, *args: Any) -> Any:
        result = fn(*args)
        if int(result[0]) != 0:
            name = rt.cudaGetErrorName(result[0])[1]
            raise RuntimeError(
                f"{fn.__name__}: {name.decode() if isinstance(name, bytes) else name}"
            )
        return result[1] if len(result) == 2 else result[1:] if len(result) > 2 else None

    err, count = rt.cudaGetDeviceCount()
    if int(err) != 0 or not count:
        name = rt.cudaGetErrorName(err)[1]
        raise Skip(
            f"CUDA reports no usable GPU ({name.decode() if isinstance(name, bytes) else name})"
        )
    props = call(rt.cudaGetDeviceProperties, 0)
    name = props.name.split(b"\0", 1)[0].decode() if isinstance(props.name, bytes) else props.name
    print(f"{count} GPU(s); cuda:0 is {name}, compute capability {props.major}.{props.minor}")
    print(f"CUDA runtime {call(rt.cudaRuntimeGetVersion)}, driver {call(rt.cudaDriverGetVersion)}")
    data = np.arange(1 << 20, dtype=np.float32)
    back = np.empty_like(data)
    ptr = call(rt.cudaMalloc, data.nbytes)
    stream = call(rt.cudaStreamCreateWithFlags, rt.cudaStreamNonBlocking)
    event = call(rt.cudaEventCreate)
    h2d, d2h = rt.cudaMemcpyKind.cudaMemcpyHostToDevice, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
    call(rt.cudaMemcpyAsync, ptr, data.ctypes.data, data.nbytes, h2d, stream)
    call(rt.cudaEventRecord, event, stream)
    call(rt.cudaStreamWaitEvent, rt.cudaStreamLegacy, event, 0)
    call(rt.cudaMemcpyAsync, back.ctypes.data, ptr, data.nbytes, d2h, stream)
    call(rt.cudaStreamSynchronize, stream)
    assert np.array_equal(back, data), "the round trip changed the data"
    call(rt.cudaEventDestroy, event)
    call(rt.cudaStreamDestroy, stream)
    call(rt.cudaFree, ptr)
    print("4 MiB host -> device -> host on a non-blocking stream, with an event: equal")


def smoke_torch() -> None:
    try:
        import torch
    except ImportError as exc:
        raise Skip(f"torch is not installed ({exc})") from None
    if not torch.cuda.is_available():
        raise Skip(f"torch {torch.__version__} sees no CUDA GPU")
    from unirun.device_tensor import LEGACY_STREAM, from_object

    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        big = torch.ones(2048, 2048, device="cuda")
        result = (big @ big).sum(dim=1)
    tensor = from_object(result, "x", stream=LEGACY_STREAM)
    assert tensor.pointer == result.data_ptr() and str(tensor.device) == "cuda:0"
    back = torch.from_dlpack(tensor)
    assert back.data_ptr() == result.data_ptr()
    assert bool(torch.all(back.cpu() == 2048.0 * 2048.0)), "wrong values after the stream wait"
    bf16 = torch.arange(8, device="cuda", dtype=torch.bfloat16)
    assert torch.equal(torch.from_dlpack(from_object(bf16, "x", stream=LEGACY_STREAM)), bf16)
    print(f"torch {torch.__version__}: float32 from a side stream and bfloat16, in and out, shared")


def smoke_cupy() -> None:
    try:
        import cupy
    except ImportError as exc:
        raise Skip(f"cupy is not installed ({exc})") from None
    from unirun.device_tensor import LEGACY_STREAM, from_object

    array = cupy.arange(1000, dtype=cupy.float16)
    tensor = from_object(array, "x", stream=LEGACY_STREAM)
    assert tensor.pointer == array.data.ptr and tensor.device.kind == "cuda"
    back = cupy.from_dlpack(tensor)
    assert back.data.ptr == array.data.ptr and bool((back == array).all())
    assert cupy.asarray(tensor).data.ptr == array.data.ptr  # the CUDA array interface
    print(f"cupy {cupy.__version__}: float16 in and out through DLPack and CAI, shared")


def _crash_for_tests() -> None:
    import os

    os.abort()  # as a CUDA fault would end the process


def _hang_for_tests() -> None:
    time.sleep(3600)


# -- running ---------------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(ROOT), *(str(p) for p in PLUGIN_SOURCES)]
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _run_smoke(check: Check, timeout: float) -> Result:
    code = (
        "import sys\n"
        "from bench import gpu_check as g\n"
        "try:\n"
        f"    g.{check.smoke}()\n"
        "except g.Skip as exc:\n"
        "    print(f'SKIP: {exc}'); sys.exit(3)\n"
    )
    start = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return Result(check.name, "timeout", time.monotonic() - start, detail=f"over {timeout} s")
    seconds = time.monotonic() - start
    out = (proc.stdout + proc.stderr).strip()
    last = out.splitlines()[-1] if out else f"exit status {proc.returncode}"
    if proc.returncode == 0:
        return Result(check.name, "passed", seconds, passed=[check.what], detail=out)
    if proc.returncode == 3:
        reason = last.removeprefix("SKIP: ")
        return Result(check.name, "skipped", seconds, skipped={reason: [check.what]})
    return Result(check.name, "failed", seconds, failed=[f"{check.what}: {last}"], detail=out)


def _run_tests(check: Check, timeout: float) -> Result:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.xml"
        command = [
            sys.executable,
            "-m",
            "pytest",
            *check.tests,
            "-q",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            "-p",
            "bench._gpu_plugins",
            f"--junitxml={report}",
            "-o",
            "junit_family=xunit1",
        ]
        start = time.monotonic()
        try:
            proc = subprocess.run(
                command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return Result(
                check.name, "timeout", time.monotonic() - start, detail=f"over {timeout} s"
            )
        seconds = time.monotonic() - start
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        if not report.exists():
            return Result(check.name, "error", seconds, detail=tail)
        result = _parse(check.name, report, seconds)
    if proc.returncode not in (0, 1, 5) or (proc.returncode == 1 and not result.failed):
        result.status, result.detail = "error", tail
    return result


def _parse(name: str, report: Path, seconds: float) -> Result:
    result = Result(name, "passed", seconds)
    for case in ET.parse(report).getroot().iter("testcase"):
        test = f"{Path(case.get('file') or case.get('classname') or '').name}::{case.get('name')}"
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        skipped = case.find("skipped")
        if failure is not None:
            result.failed.append(f"{test}: {(failure.get('message') or '')[:300]}")
        elif skipped is not None:
            reason = (skipped.get("message") or "").removeprefix("Skipped: ")
            result.skipped.setdefault(reason, []).append(test)
        else:
            result.passed.append(test)
    if result.failed:
        result.status = "failed"
    elif not result.passed:
        result.status = "skipped"
    return result


def _environment() -> list[str]:
    lines = [f"python {sys.version.split()[0]} ({sys.executable})"]
    for module in (
        "numpy",
        "onnx",
        "pydantic",
        "ml_dtypes",
        "pytest",
        "torch",
        "cupy",
        "cuda.bindings",
        "onnxruntime",
        "tensorrt",
    ):
        code = f"import {module} as m; print(getattr(m, '__version__', 'present'))"
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=_env()
        )
        found = proc.stdout.strip() if proc.returncode == 0 else "absent"
        lines.append(f"{module}: {found}")
    return lines


def _print(results: list[Result]) -> None:
    print("\n== summary")
    width = max(len(r.name) for r in results)
    for r in results:
        counts = f"{len(r.passed)} passed, {len(r.failed)} failed, "
        counts += f"{sum(map(len, r.skipped.values()))} skipped"
        print(f"{r.name:<{width}}  {r.status.upper():<8} {counts}  ({r.seconds:.0f} s)")
    for r in results:
        print(f"\n-- {r.name}: {r.status}")
        for test in r.passed:
            print(f"  ran/passed   {test}")
        for test in r.failed:
            print(f"  ran/FAILED   {test}")
        for reason, tests in r.skipped.items():
            more = " …" if len(tests) > 3 else ""
            print(f"  skipped      {len(tests)} ({', '.join(tests[:3])}{more})")
            print(f"               because: {reason}")
        if r.status in ("error", "timeout") or (r.status == "passed" and r.detail and not r.failed):
            for line in r.detail.splitlines()[-15:]:
                print(f"  | {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--only", help="comma-separated check names: " + ", ".join(c.name for c in CHECKS)
    )
    parser.add_argument("--timeout", type=float, default=240, help="seconds per check (240)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    chosen = CHECKS
    if args.only:
        names = {n.strip() for n in args.only.split(",")}
        unknown = names - {c.name for c in CHECKS}
        if unknown:
            parser.error(f"unknown check(s): {', '.join(sorted(unknown))}")
        chosen = [c for c in CHECKS if c.name in names]
    print("== environment")
    env = _environment()
    for line in env:
        print(f"  {line}")
    results = []
    for check in chosen:
        print(f"== {check.name}: {check.what}", flush=True)
        run = _run_smoke if check.smoke else _run_tests
        result = run(check, args.timeout)
        print(f"   {result.status} in {result.seconds:.0f} s", flush=True)
        results.append(result)
    _print(results)
    if args.json:
        payload = {"environment": env, "results": [r.__dict__ for r in results]}
        args.json.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    return 1 if any(r.status in ("failed", "error", "timeout") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
