"""unirun's onnxruntime backend against calling onnxruntime directly, same process, same run.

    python -m bench.bench_onnxruntime [--budget 2.0]

Both sides run the same model file with ONNX Runtime's defaults (ORT_ENABLE_ALL) and the same
inputs; native calls ``InferenceSession.run(None, feeds)``. Reported: median per-call time over
interleaved rounds, the ratio unirun/native and the absolute difference.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import onnxruntime as ort

import unirun
from bench._timing import compare
from unirun.tensor import random_feeds
from unirun.testing import conv_net, mlp

CASES = {
    "mlp 1x16 (tiny: overhead-bound)": (lambda: mlp(), {"x": (1, 16)}),
    "mlp 64x16": (lambda: mlp(), {"x": (64, 16)}),
    "conv_net 1x3x32x32": (lambda: conv_net(size=32), {"image": (1, 3, 32, 32)}),
    "conv_net 8x3x64x64": (lambda: conv_net(size=64), {"image": (8, 3, 64, 64)}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--budget", type=float, default=2.0, help="seconds per case")
    args = parser.parse_args()
    os.environ.setdefault("UNIRUN_CACHE_DIR", tempfile.mkdtemp(prefix="unirun-bench-"))
    print(f"onnxruntime {ort.__version__}, unirun {unirun.__version__}, {os.cpu_count()} CPUs")
    print(f"{'case':36} {'native':>11} {'unirun':>11} {'ratio':>7} {'diff':>9}")
    for label, (build, shapes) in CASES.items():
        proto = build()
        specs = unirun.source.graph_inputs(proto)
        feeds = random_feeds(specs, {k: unirun.ShapeRange.fixed(v) for k, v in shapes.items()})
        session = ort.InferenceSession(
            proto.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        with unirun.load(proto, backend="onnxruntime") as model:
            result = compare(
                {
                    "native": lambda s=session, f=feeds: s.run(None, f),
                    "unirun": lambda m=model, f=feeds: m(f),
                },
                budget_s=args.budget,
            )
        native, ours = result["native"], result["unirun"]
        print(
            f"{label:36} {native * 1e6:9.1f}µs {ours * 1e6:9.1f}µs {ours / native:7.3f} "
            f"{(ours - native) * 1e6:+8.2f}µs"
        )


if __name__ == "__main__":
    main()
