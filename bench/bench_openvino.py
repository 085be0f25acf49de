"""unirun's openvino backend against calling OpenVINO directly, same process, same run.

    python -m bench.bench_openvino [--budget 2.0] [--repeats 7]

Both sides compile the same ONNX model for the CPU with the same properties (fp32 precision
hint, LATENCY) and the same fixed input shape, and get the same inputs. "native" runs one
``InferRequest`` with ``request.infer(feeds, share_inputs=True)`` (no input copy, outputs copied
out: the contract unirun keeps); "tensors" is OpenVINO's lowest-level Python path on the same
request (``set_input_tensor`` with shared ``ov.Tensor``s, ``infer()``, copy the outputs).
Reported: median per-call time over interleaved rounds, the ratios unirun/native and
unirun/tensors, the absolute difference to native; then the time to get a ready model.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openvino as ov

import unirun
from bench._timing import compare
from unirun.tensor import random_feeds
from unirun.testing import conv_net, mlp
from unirun.testing.models import transformer_block

PROPS = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
CASES: dict[str, tuple[Callable[[], Any], dict[str, tuple[int, ...]]]] = {
    "mlp 1x16 (small: overhead-bound)": (lambda: mlp(), {"x": (1, 16)}),
    "conv_net 1x3x32x32 (small)": (lambda: conv_net(size=32), {"image": (1, 3, 32, 32)}),
    "conv_net 8x3x64x64 (medium)": (lambda: conv_net(size=64), {"image": (8, 3, 64, 64)}),
    "transformer d128 4x64 (medium)": (
        lambda: transformer_block(dim=128, heads=8, hidden=512),
        {"x": (4, 64, 128)},
    ),
}


def _latency(budget: float) -> None:
    print(
        f"{'per call (median)':34} {'native':>11} {'tensors':>11} {'unirun':>11} "
        f"{'u/nat':>7} {'u/tens':>7} {'u-nat':>9}"
    )
    core = ov.Core()
    for label, (build, shapes) in CASES.items():
        proto = build()
        bounds = {k: unirun.ShapeRange.fixed(v) for k, v in shapes.items()}
        feeds = random_feeds(unirun.source.graph_inputs(proto), bounds)
        native_model = core.read_model(proto.SerializeToString())
        native_model.reshape({k: ov.PartialShape(list(v)) for k, v in shapes.items()})
        request = core.compile_model(native_model, "CPU", PROPS).create_infer_request()
        by_index = dict(enumerate(feeds.values()))
        with unirun.load(proto, backend="openvino", device="cpu", shapes=shapes) as model:
            outputs = range(len(model.outputs))
            result = compare(
                {
                    "native": functools.partial(request.infer, by_index, share_inputs=True),
                    "tensors": functools.partial(_tensor_api, request, by_index, outputs),
                    "unirun": functools.partial(model.infer, feeds),
                },
                budget_s=budget,
            )
        native, floor, ours = result["native"], result["tensors"], result["unirun"]
        print(
            f"{label:34} {native * 1e6:9.1f}µs {floor * 1e6:9.1f}µs {ours * 1e6:9.1f}µs "
            f"{ours / native:7.3f} {ours / floor:7.3f} {(ours - native) * 1e6:+8.2f}µs"
        )


def _tensor_api(request: Any, feeds: dict[int, Any], outputs: range) -> list[Any]:
    """OpenVINO's lowest-level Python path: shared input tensors, outputs copied out."""
    for index, array in feeds.items():
        request.set_input_tensor(index, ov.Tensor(array, shared_memory=True))
    request.infer()
    return [request.get_output_tensor(i).data.copy() for i in outputs]


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        ready = fn()
        samples.append(time.perf_counter() - start)
        if isinstance(ready, unirun.Model):
            ready.close()
    return statistics.median(samples) * 1e3


def _load_times(repeats: int) -> None:
    """Compile (unirun cache miss: read + reshape + compile + export + IR + import), cache hit
    (blob import), saved artifact, and OpenVINO's own read+compile and import_model for scale."""
    print(
        f"\n{'ready to run (ms, median of ' + str(repeats) + ')':36} {'ov comp':>8} "
        f"{'ov imp':>8} {'miss':>8} {'hit':>8} {'artifact':>8}"
    )
    for label, (build, shapes) in CASES.items():
        work = Path(tempfile.mkdtemp(prefix="unirun-bench-ov-"))
        try:
            row = _load_row(build(), shapes, work, repeats)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(f"{label:36} " + " ".join(f"{v:8.1f}" for v in row))


def _load_row(
    proto: Any, shapes: dict[str, tuple[int, ...]], work: Path, repeats: int
) -> list[float]:
    data = proto.SerializeToString()
    core = ov.Core()

    def native() -> Any:
        m = core.read_model(data)
        m.reshape({k: ov.PartialShape(list(v)) for k, v in shapes.items()})
        return core.compile_model(m, "CPU", PROPS)

    blob = native().export_model().getvalue()
    fresh = iter(range(10**6))

    def load(cache: Path) -> unirun.Model:
        return unirun.load(proto, backend="openvino", device="cpu", shapes=shapes, cache=cache)

    load(work / "hit").close()
    saved = unirun.compile(
        proto, backend="openvino", device="cpu", shapes=shapes, cache=work / "hit"
    ).save(work / "saved.ov.unirun")
    return [
        _median_ms(native, repeats),
        _median_ms(lambda: core.import_model(blob, "CPU", PROPS), repeats),
        # a fresh unirun cache (and OpenVINO CACHE_DIR inside it) every time
        _median_ms(lambda: load(work / f"miss-{next(fresh)}"), repeats),
        _median_ms(lambda: load(work / "hit"), repeats),
        _median_ms(lambda: unirun.load(saved), repeats),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--budget", type=float, default=2.0, help="seconds per latency case")
    parser.add_argument("--repeats", type=int, default=7, help="loads per load-time cell")
    args = parser.parse_args()
    os.environ.setdefault("UNIRUN_CACHE_DIR", tempfile.mkdtemp(prefix="unirun-bench-"))
    print(f"openvino {ov.__version__}, unirun {unirun.__version__}, {os.cpu_count()} CPUs")
    _latency(args.budget)
    _load_times(args.repeats)


if __name__ == "__main__":
    main()
