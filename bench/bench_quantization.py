"""int8 through unirun against native fp32, on ONNX Runtime and OpenVINO, in one run.

    python -m bench.bench_quantization [--budget 2.0] [--calibration 48] [--no-isa-limit]

For a CNN (``unirun.testing.resnet_like``: 2 residual blocks per stage, width 32, 112x112,
1000 classes) and a small transformer (``transformer_block``: d=256, 4 heads, MLP 1024, 128
tokens), both with fixed-seed random weights, and random normal calibration data:

* native fp32: the ONNX file on ``onnxruntime.InferenceSession`` / ``openvino`` ``compile_model``
  (``INFERENCE_PRECISION_HINT`` f32, LATENCY), the engines' defaults otherwise, ORT thread
  spinning off on both sides;
* unirun int8: ``unirun.load(model, backend=..., device="cpu", precision="int8",
  calibration=...)``: the form unirun chose (``manifest.extra["quantization"]``) and what it
  measured for each form it tried.

Reported per model and engine: median per-call time of native fp32 and unirun int8 over
interleaved rounds and their ratio (below 1: int8 is faster); accuracy of int8 against native
fp32 on 16 fresh inputs (mean cosine, max|Δ|/max|ref|, top-1 agreement for the classifier);
artifact size against the fp32 ONNX file and against unirun's fp32 artifact for the same engine
(an OpenVINO artifact holds the IR and the compiled blob, the int8-weights form on the CPU the
IR only; its IR ``.bin`` alone is shown too).
The errors compare variants of random-weight models, not task accuracy.

Unless ``--no-isa-limit``, the OpenVINO part runs again in a child process with
``ONEDNN_MAX_CPU_ISA=AVX2``, which OpenVINO's CPU plugin honours (its int8 kernels become the
non-VNNI ``jit_avx2_I8`` ones, as on an AVX2-only CPU) and which unirun's CPU check reads (so it
quantizes weights to 7 bits as it would there). ONNX Runtime has no such switch: its MLAS
kernels pick the ISA from CPUID, so its AVX2 behaviour cannot be reproduced on a VNNI machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import unirun
from bench._timing import compare
from unirun.quantize import compare_outputs, cpu_int8
from unirun.testing import resnet_like, transformer_block

Array = np.ndarray[Any, Any]
CASES: dict[str, tuple[Callable[[], Any], str, tuple[int, ...]]] = {
    "cnn resnet_like 1x3x112x112": (
        lambda: resnet_like(width=32, stages=(2, 2, 2), size=112, classes=1000),
        "image",
        (1, 3, 112, 112),
    ),
    "transformer d256 1x128": (
        lambda: transformer_block(dim=256, heads=4, hidden=1024),
        "x",
        (1, 128, 256),
    ),
}


def _feeds(name: str, shape: tuple[int, ...], count: int, seed: int) -> list[dict[str, Array]]:
    rng = np.random.default_rng(seed)
    return [{name: rng.standard_normal(shape).astype(np.float32)} for _ in range(count)]


def _native(engine: str, data: bytes) -> Callable[[dict[str, Array]], Any]:
    if engine == "onnxruntime":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
        return lambda feeds: session.run(None, feeds)[0]
    import openvino as ov

    props = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    request = ov.Core().compile_model(ov.Core().read_model(data), "CPU", props)
    infer = request.create_infer_request()
    return lambda feeds: infer.infer(feeds, share_inputs=True)[0].copy()


def _row(engine: str, label: str, calibration: int, budget: float) -> None:
    build, name, shape = CASES[label]
    proto = build()
    data = proto.SerializeToString()
    cal = _feeds(name, shape, calibration, seed=1)
    test = _feeds(name, shape, 16, seed=2)
    native = _native(engine, data)
    options = {"allow_spinning": False} if engine == "onnxruntime" else None
    started = time.perf_counter()
    model = unirun.load(
        proto, backend=engine, device="cpu", precision="int8", calibration=cal, options=options
    )
    build_s = time.perf_counter() - started
    with model:
        record = model.artifact.manifest.extra["quantization"]
        files = {f.path: f.size for f in model.artifact.manifest.files}
        want = [{"out": native(f)} for f in test]
        got = [{"out": next(iter(model(f).values()))} for f in test]
        accuracy = compare_outputs(got, want)["out"]
        feed = test[0]
        times = compare(
            {"native fp32": lambda: native(feed), "unirun int8": lambda: model(feed)},
            budget_s=budget,
        )
    fp32_ms, int8_ms = times["native fp32"] * 1e3, times["unirun int8"] * 1e3
    size_text = (
        f"{sum(files.values()) / len(data):5.1%} of the ONNX, "
        f"{record['payload_bytes'] / record['fp32_payload_bytes']:5.1%} of unirun's fp32 artifact"
    )
    if "model.bin" in files:
        size_text += f" (IR .bin {files['model.bin'] / len(data):.1%} of the ONNX)"
    top1 = accuracy.get("top1")
    print(
        f"{label:28} {engine:11} {fp32_ms:9.2f} {int8_ms:9.2f} {int8_ms / fp32_ms:6.2f}x "
        f"{record['form']:13} {accuracy['cosine']:.5f} {accuracy['relative']:.4f} "
        f"{'-' if top1 is None else f'{top1:.0%}':>5}  {size_text}"
    )
    tried = "; ".join(
        f"{c['form']}: "
        + (
            f"{c['speed']['int8_ms'] / c['speed']['fp32_ms']:.2f}x fp32, "
            f"cos {next(iter(c['accuracy'].values()))['cosine']:.5f}"
            if c.get("speed")
            else f"error {str(c.get('error'))[:90]}…"
        )
        for c in record["tried"]
    )
    print(
        f"{'':28} {'':11} built in {build_s:.1f} s, reduce_range "
        f"{record['parameters'].get('reduce_range', '-')}; measured at build: {tried}"
    )


def _header() -> None:
    print(
        f"{'model':28} {'engine':11} {'fp32 ms':>9} {'int8 ms':>9} {'ratio':>7} {'form':13} "
        f"{'cosine':7} {'rel':6} {'top1':>5}  artifact size"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--budget", type=float, default=2.0, help="seconds per timing case")
    parser.add_argument("--calibration", type=int, default=48, help="calibration samples")
    parser.add_argument("--no-isa-limit", action="store_true", help="skip the AVX2 run")
    parser.add_argument("--engines", default="onnxruntime,openvino", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("UNIRUN_CACHE_DIR", tempfile.mkdtemp(prefix="unirun-bench-"))
    import onnxruntime
    import openvino

    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    cpu = cpu_int8()
    print(
        f"onnxruntime {onnxruntime.__version__}, openvino {openvino.__version__}, unirun "
        f"{unirun.__version__}, {os.cpu_count()} CPUs; int8 dot product: {cpu.dot_product} "
        f"({cpu.evidence})" + (f"; ONEDNN_MAX_CPU_ISA={cap}" if cap else "")
    )
    _header()
    for label in CASES:
        for engine in args.engines.split(","):
            _row(engine, label, args.calibration, args.budget)
    if not args.no_isa_limit and cap is None:
        print("\nOpenVINO again with ONEDNN_MAX_CPU_ISA=AVX2 (int8 kernels without VNNI):")
        # A fresh cache: fp32 blobs built for this CPU's full ISA would not import there.
        cache = tempfile.mkdtemp(prefix="unirun-bench-avx2-")
        env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "UNIRUN_CACHE_DIR": cache}
        command = [sys.executable, "-m", "bench.bench_quantization", "--engines", "openvino"]
        command += ["--budget", str(args.budget), "--calibration", str(args.calibration)]
        subprocess.run(command, env=env, check=True)


if __name__ == "__main__":
    main()
