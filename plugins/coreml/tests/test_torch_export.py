"""Models as PyTorch's ONNX exporter writes them (shape arithmetic, Where masks, Expand,
dynamic axes), when torch is installed (it is a dev dependency of the workspace)."""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np
import onnx
import pytest

import unirun_coreml as uc

torch = pytest.importorskip("torch")


def _export(
    model: Any, args: tuple[Any, ...], names: list[str], dynamic: dict[str, dict[int, str]]
) -> onnx.ModelProto:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's tracer and deprecation notices
        torch.onnx.export(
            model.eval(),
            args,
            buffer,
            input_names=names,
            dynamic_axes=dynamic,
            opset_version=17,
            dynamo=False,
        )
    return onnx.load_from_string(buffer.getvalue())


class _Cnn(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1, self.b1 = torch.nn.Conv2d(3, 16, 3, 2, 1), torch.nn.BatchNorm2d(16)
        self.c2, self.b2 = torch.nn.Conv2d(16, 16, 3, 1, 1, groups=16), torch.nn.BatchNorm2d(16)
        self.up = torch.nn.ConvTranspose2d(16, 8, 4, 2, 1)
        self.head = torch.nn.Linear(8, 10)

    def forward(self, x: Any) -> Any:
        f = torch.nn.functional
        y = f.hardswish(self.b1(self.c1(x)))
        y = f.silu(self.b2(self.c2(y))) + y
        y = f.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
        y = f.avg_pool2d(y, 3, 2, 1, ceil_mode=True, count_include_pad=False)
        y = self.up(y)
        return self.head(y.mean((2, 3))).softmax(-1), y


class _Encoder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(100, 32)
        layer = torch.nn.TransformerEncoderLayer(
            32, 4, 64, dropout=0.0, batch_first=True, activation="gelu"
        )
        self.enc = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)

    def forward(self, ids: Any, mask: Any) -> Any:
        return self.enc(self.emb(ids), src_key_padding_mask=mask == 0)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_exported_cnn(harness: Any, rng: np.random.Generator, precision: str) -> None:
    torch.manual_seed(0)
    model = _export(_Cnn(), (torch.randn(1, 3, 32, 32),), ["x"], {"x": {0: "n"}})
    package = harness.package(
        model, shapes={"x": ((1, 3, 32, 32), (2, 3, 32, 32), (4, 3, 32, 32))}, precision=precision
    )
    rtol = 1e-5 if precision == "fp32" else 1e-2
    feeds = {"x": rng.standard_normal((3, 3, 32, 32)).astype(np.float32)}
    got, want = uc.evaluate(package, feeds), harness.ort(model, feeds)
    for name in want:
        assert harness.compare_arrays(got[name], want[name], rtol).ok, name


def test_exported_encoder_with_padding_mask(harness: Any, rng: np.random.Generator) -> None:
    torch.manual_seed(0)
    # The exporter bakes the traced sequence length into some reshapes, so only the batch
    # stays dynamic in practice; the graph still computes its shapes at run time.
    args = (torch.randint(0, 100, (2, 7)), torch.ones(2, 7, dtype=torch.int64))
    axes = {"ids": {0: "b"}, "mask": {0: "b"}}
    model = _export(_Encoder(), args, ["ids", "mask"], axes)
    package = harness.package(
        model, shapes={"ids": ((1, 7), (2, 7), (4, 7)), "mask": ((1, 7), (2, 7), (4, 7))}
    )
    for batch in (1, 3):
        mask = np.ones((batch, 7), np.int64)
        mask[0, 4:] = 0
        feeds = {"ids": rng.integers(0, 100, (batch, 7)).astype(np.int64), "mask": mask}
        got, want = uc.evaluate(package, feeds), harness.ort(model, feeds)
        for name in want:
            assert harness.compare_arrays(got[name], want[name]).ok, name


class _Recognizer(torch.nn.Module):
    """A CRNN-like OCR recogniser: conv backbone, an attention neck whose reshapes PyTorch
    writes as Shape → Gather → Unsqueeze → Concat → Reshape (rank 5 and back), then the
    feature map flattened to (N, C*H', W') and a Linear head; optionally a BiLSTM."""

    def __init__(self, lstm: bool = False) -> None:
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 8, 3, 2, 1)
        self.c2 = torch.nn.Conv2d(8, 16, 3, (2, 1), 1)
        self.qkv = torch.nn.Linear(16, 48)
        self.lstm = torch.nn.LSTM(96, 12, bidirectional=True, batch_first=True) if lstm else None
        self.fc = torch.nn.Linear(24 if lstm else 96, 11)

    def forward(self, x: Any) -> Any:
        y = torch.nn.functional.max_pool2d(torch.relu(self.c1(x)), 2, 2)
        y = torch.relu(self.c2(y))  # [n, 16, 6, w/4]
        b, c, h, w = y.shape
        z = y.flatten(2).transpose(1, 2)
        qkv = self.qkv(z).reshape(b, -1, 3, 2, 8).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = (q @ k.transpose(-2, -1) * 0.35).softmax(-1)
        z = (a @ v).transpose(1, 2).reshape(b, -1, c)
        y = z.reshape(b, h, w, c).permute(0, 3, 1, 2) + y
        seq = y.reshape(b, c * h, w).permute(0, 2, 1)
        if self.lstm is not None:
            seq = self.lstm(seq)[0]
        return self.fc(seq).softmax(-1)


OCR_BOUNDS = ((1, 3, 48, 320), (1, 3, 48, 320), (8, 3, 48, 2000))


@pytest.mark.slow
def test_exported_recognizer_with_dynamic_batch_and_width(
    harness: Any, rng: np.random.Generator
) -> None:
    torch.manual_seed(0)
    dynamic = {"x": {0: "n", 3: "w"}}
    model = _export(_Recognizer(), (torch.randn(1, 3, 48, 320),), ["x"], dynamic)
    shapes = {"x": OCR_BOUNDS}
    assert uc.unsupported_ops(model, shapes=shapes) == []
    package = harness.package(model, shapes=shapes)
    for batch, width in ((1, 320), (3, 648), (2, 2000)):
        feeds = {"x": rng.standard_normal((batch, 3, 48, width)).astype(np.float32)}
        got, want = uc.evaluate(package, feeds), harness.ort(model, feeds)
        for name in want:
            assert got[name].shape == want[name].shape == (batch, width // 4, 11)
            assert harness.compare_arrays(got[name], want[name]).ok, (name, width)


def test_exported_recognizer_with_lstm_is_refused_by_check_and_translate() -> None:
    torch.manual_seed(0)
    model = _export(_Recognizer(lstm=True), (torch.randn(1, 3, 48, 320),), ["x"],
                    {"x": {0: "n", 3: "w"}})  # fmt: skip
    refused = uc.explain_unsupported(model, shapes={"x": OCR_BOUNDS})
    assert [op.op_type for op in refused] == ["LSTM"]
    with pytest.raises(uc.UnsupportedOpsError) as info:
        uc.translate(model, shapes={"x": OCR_BOUNDS})
    assert info.value.ops == [(op.node_name, op.op_type) for op in refused]
