"""Ownership of outputs and NaN: outputs belong to the caller and never alias a feed, feeds are
only read, and NaN propagates unless the engine declares that it does not."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from unirun.source import graph_inputs

from .. import models
from .._support import NAN_CASES, aliasing_model, nan_model, normal
from .base import ConformanceBase, Engine, Params

__all__ = ["OwnershipTests"]


class OwnershipTests(ConformanceBase):
    """Do outputs stay the caller's, and does NaN come out where it went in?"""

    #: NaN handling that differs from IEEE propagation (what ONNX's reference does): a case of
    #: ``test_nan_propagates`` (an operator such as ``"Relu"``, or ``"conv_net"``) → what the
    #: engine does instead and why. Declared data, not a failure: the test then passes whether
    #: or not this machine's kernels swallow NaN, and documentation can list the difference.
    nan_swallowing: ClassVar[Mapping[str, str]] = {}

    _params: ClassVar[Mapping[str, Params]] = {"nan_case": NAN_CASES}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for case, reason in cls.nan_swallowing.items():
            if case not in NAN_CASES:
                raise TypeError(
                    f"{cls.__name__}.nan_swallowing names {case!r}; the cases are "
                    f"{', '.join(NAN_CASES)}"
                )
            if not isinstance(reason, str) or not reason.strip():
                raise TypeError(f"{cls.__name__}.nan_swallowing[{case!r}] needs a reason")

    def test_outputs_and_inputs_are_not_shared(self, engine: Engine) -> None:
        """Outputs belong to the caller (a later call leaves them alone) and inputs are only
        read (read-only arrays are accepted and left unchanged).

        Troubleshooting: copy out of reusable engine buffers before returning; never write into
        a feed array, and do not keep references to it after ``infer`` returns.
        """
        model = models.mlp()
        a, b = normal((2, 16), 3), normal((2, 16), 4)
        a.flags.writeable = False
        a_before = a.copy()
        with self.load(engine, model, shapes=self.shapes_for(engine, model, {"batch": 2})) as m:
            first = m({"x": a})["probs"]
            kept = first.copy()
            m({"x": b})
            m({"x": b})
        np.testing.assert_array_equal(first, kept)
        np.testing.assert_array_equal(a, a_before)

    def test_outputs_do_not_alias_inputs(self, engine: Engine) -> None:
        """No output shares memory with a feed, even where the graph passes the input through
        (Identity, Reshape, an output that is also an input): a caller reusing its input buffer
        keeps the earlier outputs intact.

        Troubleshooting: the core copies any output that may share memory with a feed, so a
        failure means the plugin returns memory numpy cannot see as the feed's (an engine
        buffer bound to the caller's pointer): copy such outputs in ``infer``.
        """
        buffer = np.zeros(3, np.float32)
        kept = []
        with self.load(engine, aliasing_model()) as m:
            for step in range(3):
                buffer[:] = step
                out = m({"x": buffer})
                shared = [name for name, value in out.items() if np.shares_memory(value, buffer)]
                assert not shared, f"outputs {shared} share memory with the input"
                kept.append(out)
        for step, out in enumerate(kept):
            for name, value in out.items():
                assert (value == step).all(), f"{name} changed after a later call: {value}"

    def test_nan_propagates(self, engine: Engine, nan_case: str) -> None:
        """An all-NaN input gives an all-NaN output, as IEEE arithmetic and ONNX's reference
        do; an engine whose kernels return numbers instead declares it in ``nan_swallowing``.

        Troubleshooting: max/min-based kernels (Relu, MaxPool, ReduceMax, Clip, Max) written as
        ``x > 0 ? x : 0`` or with SIMD max instructions return the non-NaN operand. If the
        engine does this by design, declare the case in ``nan_swallowing`` with the reason, so
        users learn it from the documentation rather than from a model that hides a NaN.
        """
        model = nan_model(nan_case)
        (spec,) = graph_inputs(model)
        assert spec.shape is not None and spec.is_static
        x = np.full(tuple(int(d) for d in spec.shape), np.nan, np.float32)
        with self.load(engine, model) as m:
            (y,) = m({spec.name: x}).values()
        if np.isnan(y).all():
            return
        declared = self.nan_swallowing.get(nan_case)
        assert declared, (
            f"{engine.name} turns an all-NaN input into {np.count_nonzero(~np.isnan(y))} "
            f"non-NaN value(s) out of {y.size} in case {nan_case!r} (ONNX's reference and IEEE "
            "arithmetic propagate NaN); if this is the engine's documented behaviour, declare "
            f"nan_swallowing = {{{nan_case!r}: 'why'}} on the test class"
        )
