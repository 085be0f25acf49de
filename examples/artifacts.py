"""Compile once, save the artifact, load it in another process (or on another machine).

Run it: ``python examples/artifacts.py [OUTPUT_DIR]``
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import unirun

MODEL = Path(__file__).resolve().parent / "models" / "mlp.onnx"

# What a deployment does: load the artifact (no ONNX model, no compile) and run it.
SERVE = """
import sys, numpy as np, unirun
with unirun.load(sys.argv[1]) as model:
    x = np.linspace(-1, 1, 3 * 16, dtype=np.float32).reshape(3, 16)
    np.save(sys.argv[2], model(x)["probs"])
    print(f"loaded {sys.argv[1]} on {model.backend} ({model.cache_status})")
"""


def main(out_dir: Path) -> None:
    artifact = unirun.compile(MODEL, backend="onnxruntime", device="cpu", threads=1)
    # overwrite=True replaces the artifact an earlier run saved there (and never anything else)
    saved = artifact.save(out_dir / "mlp.unirun", overwrite=True)
    manifest = json.loads((saved / "manifest.json").read_text(encoding="utf-8"))
    print(f"saved {saved}: {[f['path'] for f in manifest['files']]}")
    engine = f"{manifest['backend']} {manifest['runtime_version']}"
    print(f"  built by {engine} for {manifest['device']}")

    result = out_dir / "probs.npy"
    subprocess.run([sys.executable, "-c", SERVE, str(saved), str(result)], check=True)

    x = np.linspace(-1, 1, 3 * 16, dtype=np.float32).reshape(3, 16)
    expected = unirun.predict(MODEL, x, backend="reference")["probs"]
    np.testing.assert_allclose(np.load(result), expected, rtol=1e-5, atol=1e-6)
    print("the artifact's outputs match the reference backend")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
