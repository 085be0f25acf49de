"""One model, many requests: threads, map() with several in flight, and futures.

Run it: ``python examples/threads.py``
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

import unirun

MODEL = Path(__file__).resolve().parent / "models" / "tiny_cnn.onnx"
REQUESTS = 64


def main() -> None:
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((1, 3, 32, 32)).astype(np.float32) for _ in range(REQUESTS)]
    with unirun.load(MODEL) as model:
        expected = [model(b)["logits"] for b in batches]

        # A Model is thread-safe: share one between threads.
        with ThreadPoolExecutor(max_workers=4) as pool:
            shared = list(pool.map(model, batches))

        # map() keeps several requests in flight and yields results in input order.
        start = time.perf_counter()
        mapped = list(model.map(batches, in_flight=4))
        elapsed = time.perf_counter() - start

        # infer_async() returns a concurrent.futures.Future.
        futures = [model.infer_async(b) for b in batches[:8]]
        first = [f.result() for f in futures]

    for got in (shared, mapped, first):
        for out, want in zip(got, expected[: len(got)], strict=True):
            np.testing.assert_allclose(out["logits"], want, rtol=1e-6, atol=1e-7)
    print(f"{REQUESTS} requests through map(): {REQUESTS / elapsed:,.0f} per second")
    print("threads, map() and futures all give the same outputs, in order")


if __name__ == "__main__":
    main()
