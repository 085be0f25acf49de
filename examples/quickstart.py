"""Load a model, look at its inputs and outputs, run it three ways, catch a wrong input.

Run it: ``python examples/quickstart.py``
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import unirun

MODEL = Path(__file__).resolve().parent / "models" / "tiny_cnn.onnx"


def main() -> None:
    image = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with unirun.load(MODEL) as model:  # the best available backend; compiled once, then cached
        print(f"{MODEL.name} on {model.backend} ({model.device}), cache {model.cache_status}")
        for spec in model.inputs + model.outputs:
            print(f"  {spec}")
        by_name = model({"image": image})
        by_position = model([image])
        only_input = model(image)
        for other in (by_position, only_input):
            assert np.array_equal(by_name["logits"], other["logits"])
        print("logits:", by_name["logits"].shape, "top classes:", by_name["logits"].argmax(axis=1))
        try:
            model(image.astype(np.float64))
        except unirun.InputError as exc:
            print("refused:", exc)


if __name__ == "__main__":
    main()
