"""The core's own per-call work in ``Model.infer``: feed checks, output ownership and shape
checks, with the engine call replaced by returning the engine's real outputs of an earlier call.

    python -m bench.bench_core [--backend onnxruntime]

Reported: median CPU time per call (``time.thread_time``, so that other processes on a busy
machine do not count) over interleaved rounds, next to the engine call it wraps.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

import unirun
from unirun.testing import conv_net, mlp, multi_io

Array = np.ndarray[Any, Any]
Feeds = dict[str, Array]

CASES: dict[str, tuple[Callable[[], Any], Feeds]] = {
    "mlp: 1 input, 1 dynamic output": (mlp, {"x": np.ones((1, 16), np.float32)}),
    "conv_net: static 1 input, 1 output": (
        lambda: conv_net(batch=1, size=8),
        {"image": np.ones((1, 3, 8, 8), np.float32)},
    ),
    "multi_io: 2 inputs, 3 outputs": (
        multi_io,
        {"x": np.ones((2, 3), np.float32), "mask": np.ones((2, 3), bool)},
    ),
}


def _replay(outputs: Sequence[Array]) -> Callable[[Mapping[str, Array]], Sequence[Array]]:
    return lambda _feeds: outputs


def cpu_per_call(fn: Callable[[], object], calls: int) -> float:
    start = time.thread_time()
    for _ in range(calls):
        fn()
    return (time.thread_time() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--rounds", type=int, default=31)
    args = parser.parse_args()
    os.environ.setdefault("UNIRUN_CACHE_DIR", tempfile.mkdtemp(prefix="unirun-bench-"))
    print(f"unirun {unirun.__version__}, backend {args.backend}, {os.cpu_count()} CPUs")
    print(f"{'case':36} {'engine call':>12} {'core work':>10}")
    for label, (build, feeds) in CASES.items():
        with unirun.load(build(), backend=args.backend, cache=False) as model:
            engine = model._executable.infer
            outputs = list(engine(feeds))
            model._run = _replay(outputs)  # the core's work only
            candidates = {
                "engine": lambda e=engine, f=feeds: e(f),
                "core": lambda m=model, f=feeds: m(f),
            }
            samples: dict[str, list[float]] = {name: [] for name in candidates}
            for fn in candidates.values():
                cpu_per_call(fn, 200)  # warm-up
            for _ in range(args.rounds):
                for name, fn in candidates.items():
                    samples[name].append(cpu_per_call(fn, 2000))
        engine_s, core_s = (statistics.median(samples[n]) for n in ("engine", "core"))
        print(f"{label:36} {engine_s * 1e6:10.2f}µs {core_s * 1e9:8.0f}ns")


if __name__ == "__main__":
    main()
