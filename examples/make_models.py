"""Write the example models used by the README and the examples (deterministic, byte-stable).

python examples/make_models.py
"""

from __future__ import annotations

from pathlib import Path

import onnx

from unirun.testing import conv_net, mlp

HERE = Path(__file__).resolve().parent / "models"

MODELS = {
    # A small image classifier: image float32[N, 3, 32, 32] -> logits float32[N, 10].
    "tiny_cnn.onnx": lambda: conv_net(batch="N", size=32),
    # A two-layer perceptron: x float32[batch, 16] -> probs float32[batch, 4].
    "mlp.onnx": mlp,
}


def main() -> None:
    HERE.mkdir(exist_ok=True)
    for name, build in MODELS.items():
        model = build()
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, str(HERE / name))
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
