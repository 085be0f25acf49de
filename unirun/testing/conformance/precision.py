"""Precision: every declared precision (fp16, bf16, int8 from calibration data) runs close to
the fp32 reference, and an undeclared one is refused."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import pytest

import unirun
from unirun.errors import OptionsError

from .. import models
from .._support import feeds_for, normal
from .base import SIZES, ConformanceBase, Engine, Params

__all__ = ["PRECISIONS", "PrecisionTests"]

#: Every precision unirun knows; a backend declares some of them.
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


class PrecisionTests(ConformanceBase):
    """Does each declared precision stay close to fp32, and is the rest refused?"""

    _params: ClassVar[Mapping[str, Params]] = {"precision": PRECISIONS}

    def test_precision(self, engine: Engine, precision: str) -> None:
        """Each declared precision runs close to the fp32 reference; others are refused.

        Troubleshooting: declare only precisions the engine really computes in; the tolerance
        for fp16/bf16 is loose (class attribute ``tolerance``) but outputs must keep the graph's
        dtype (float32 in, float32 out), so cast back at the boundary. int8 (from calibration
        data, in the forms ``Capabilities.int8_forms`` lists) must stay within unirun's bound
        (``unirun.quantize``: mean cosine ≥ 0.999, max|Δ|/max|ref| ≤ 0.05); compile the Q/DQ
        graph the core hands over as it is, with float math for what is not quantized.
        """
        if precision == "int8" and precision in engine.capabilities.precisions:
            self._check_int8(engine)
            return
        model = models.conv_net(size=8)
        feeds = feeds_for(model, SIZES)
        shapes = self.shapes_for(engine, model, SIZES)
        if precision not in engine.capabilities.precisions:
            with pytest.raises(OptionsError, match="does not support precision"):
                unirun.compile(
                    model, backend=engine.name, device=engine.device, precision=precision
                )
            return
        with self.load(engine, model, precision=precision, shapes=shapes) as m:
            got = m(feeds)
        self.assert_close(got, self.golden(model, feeds), precision)

    def _check_int8(self, engine: Engine) -> None:
        pytest.importorskip("onnxruntime.quantization", reason="int8 calibration needs it")
        from unirun.quantize import compare_outputs, within_bound

        if engine.device.kind not in engine.capabilities.int8_forms:
            pytest.skip(f"backend {engine.name!r} declares no int8 form for {engine.device}")
        model = models.resnet_like(width=16, size=16, classes=10)
        samples = [{"image": normal((2, 3, 16, 16), seed)} for seed in range(20)]
        shapes = self.shapes_for(engine, model, SIZES)
        with self.load(engine, model, precision="int8", shapes=shapes, calibration=samples) as m:
            record = m.artifact.manifest.extra["quantization"]
            feeds = {"image": normal((2, 3, 16, 16), 99)}
            got = m(feeds)
        assert record["form"] in {
            f.value for f in engine.capabilities.int8_forms[engine.device.kind]
        }
        summary = compare_outputs([got], [self.golden(model, feeds)])
        assert within_bound(summary["logits"]), summary
