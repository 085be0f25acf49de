"""Check one backend against another from Python, the way `unirun compare` does.

Run it: ``python examples/compare_backends.py [BACKEND]`` (default backend: onnxruntime)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import unirun
from unirun.tensor import random_feeds

MODEL = Path(__file__).resolve().parent / "models" / "tiny_cnn.onnx"


def main(backend: str) -> None:
    with unirun.load(MODEL, backend="reference") as ref, unirun.load(MODEL, backend=backend) as m:
        feeds = random_feeds(ref.inputs, seed=0)
        want, got = ref(feeds), m(feeds)
    for name, expected in want.items():
        error = np.abs(got[name] - expected)
        print(f"{backend} vs reference, {name}: max abs error {error.max():.2e}")
        np.testing.assert_allclose(got[name], expected, rtol=1e-4, atol=1e-5)
    print("within fp32 tolerances")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "onnxruntime")
