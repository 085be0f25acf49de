"""Framework tensors as inputs: torch CPU tensors through DLPack, without copies."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest

import unirun
from unirun import DType, InputError, TensorSpec
from unirun.tensor import as_array
from unirun.testing import conv_net, embedding_model

torch = pytest.importorskip("torch", reason="torch is not installed (requirements-dev.txt pins it)")


@pytest.fixture(scope="module")
def cnn() -> Any:
    with unirun.load(conv_net(size=8), backend="reference") as model:
        yield model


def test_torch_tensor_is_shared_not_copied() -> None:
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    array = as_array(t, TensorSpec("x", DType.FLOAT32, (3, 4)))
    assert array.ctypes.data == t.data_ptr()
    t[0, 0] = 42.0
    assert array[0, 0] == 42.0


def test_torch_inputs_match_numpy_inputs(cnn: unirun.Model) -> None:
    t = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    expected = cnn(t.numpy())["logits"]
    np.testing.assert_array_equal(cnn(t)["logits"], expected)
    transposed = t.transpose(2, 3).contiguous().transpose(2, 3)  # same values, strided memory
    np.testing.assert_array_equal(cnn({"image": transposed})["logits"], expected)


def test_torch_integer_and_float_inputs_together() -> None:
    with unirun.load(embedding_model(), backend="reference") as model:
        out = model({"ids": torch.tensor([[1, 2, 0]]), "scale": torch.tensor([2.0])})
    assert out["count"].tolist() == [2]


def test_torch_bfloat16_keeps_its_bits() -> None:
    t = torch.tensor([1.0, -2.5, 3.140625], dtype=torch.bfloat16)
    array = as_array(t, TensorSpec("x", DType.BFLOAT16, (3,)))
    assert array.dtype == np.dtype(ml_dtypes.bfloat16)
    assert array.astype(np.float32).tolist() == [1.0, -2.5, 3.140625]


def test_torch_wrong_dtype_and_grad_are_input_errors(cnn: unirun.Model) -> None:
    with pytest.raises(InputError, match="got dtype float64"):
        cnn(torch.zeros(1, 3, 8, 8, dtype=torch.float64))
    with pytest.raises(InputError, match=r"detach"):
        cnn(torch.zeros(1, 3, 8, 8, requires_grad=True))
