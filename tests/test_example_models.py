"""The committed example models are exactly what examples/make_models.py writes."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["tiny_cnn.onnx", "mlp.onnx"])
def test_example_model_is_reproducible(name: str) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_models", ROOT / "examples/make_models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rebuilt = module.MODELS[name]()
    committed = (ROOT / "examples/models" / name).read_bytes()
    assert rebuilt.SerializeToString() == committed
    onnx.checker.check_model(onnx.load_from_string(committed), full_check=True)
