"""Values and dtypes: the standard models give the reference's outputs, the model's signature
is reported as in the graph, and every declared dtype goes in and comes out bit for bit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import pytest

from unirun.dtypes import DType
from unirun.source import graph_inputs, graph_outputs

from .. import models
from .._support import assert_shape_agrees, edge_values, feeds_for, same_values
from .base import MODELS, SIZES, STANDARD_DTYPES, ConformanceBase, Engine, Params

__all__ = ["ValueTests"]


def _dtypes(cls: type[ConformanceBase]) -> Sequence[DType]:
    """The standard dtypes, then any other the backend declares."""
    declared = cls._declared().dtypes
    return [*STANDARD_DTYPES, *(d for d in declared if d not in STANDARD_DTYPES)]


class ValueTests(ConformanceBase):
    """Does the backend compute what the reference computes, in the graph's names and types?"""

    _params: ClassVar[Mapping[str, Params]] = {"model_name": tuple(MODELS), "dtype": _dtypes}

    def test_signature(self, engine: Engine) -> None:
        """``Model.inputs``/``outputs`` report names, order, dtypes and shapes as in the graph.

        Troubleshooting: build the specs from what the engine reports after compiling, in the
        graph's order; a fixed dimension is an int and a symbolic one a string (keep the model's
        name where the engine keeps it, "?" otherwise). An engine that renames or reorders
        inputs needs a name map kept in the artifact's ``extra``.
        """
        for name in ("multi_io", "embedding", "matmul_symbolic"):
            model = MODELS[name]()
            with self.load(engine, model, shapes=self.shapes_for(engine, model, SIZES)) as m:
                for got, want in (
                    (m.inputs, graph_inputs(model)),
                    (m.outputs, graph_outputs(model)),
                ):
                    assert [s.name for s in got] == [s.name for s in want], name
                    assert [s.dtype for s in got] == [s.dtype for s in want], name
                    for g, w in zip(got, want, strict=True):
                        assert_shape_agrees(g, w, m.options.shapes.get(g.name))
                assert m.artifact.inputs == m.inputs and m.artifact.outputs == m.outputs

    def test_outputs_match_reference(self, engine: Engine, model_name: str) -> None:
        """Standard models give the reference's outputs (fp32 tolerance), names in graph order.

        Troubleshooting: wrong values usually come from a layout or dtype mix-up at the
        boundary (NCHW vs NHWC, int64 indices narrowed to int32), from returning outputs in the
        engine's order instead of the graph's, or from a reused output buffer.
        """
        model = MODELS[model_name]()
        feeds = feeds_for(model, SIZES)
        with self.load(engine, model, shapes=self.shapes_for(engine, model, SIZES)) as m:
            got = m(feeds)
        self.assert_close(got, self.golden(model, feeds))

    def test_dtype_round_trip(self, engine: Engine, dtype: DType) -> None:
        """Every declared dtype goes in and comes out bit for bit, edge values included.

        Troubleshooting: map the type in the plugin's ``_dtypes.py`` table both ways. Types
        numpy lacks arrive as ``ml_dtypes`` arrays (``DType.numpy``); if the engine's Python API
        rejects them, hand it the raw bits (a ``uint8``/``uint16`` view, packed nibbles for
        4-bit types) with the engine's type tag, and rebuild outputs the same way.
        """
        if dtype not in engine.capabilities.dtypes:
            pytest.skip(f"backend {engine.name!r} does not declare dtype {dtype}")
        model = models.passthrough(dtype)
        x = edge_values(dtype, (2, 3))
        with self.load(engine, model) as m:
            assert [s.dtype for s in (*m.inputs, *m.outputs)] == [dtype] * 3
            out = m({"x": x})
        for name, want in (("y", x), ("flat", x.reshape(-1))):
            got = out[name]
            assert got.dtype == dtype.numpy, f"{name}: dtype {got.dtype}, expected {dtype.numpy}"
            assert got.shape == want.shape, f"{name}: shape {got.shape}, expected {want.shape}"
            assert same_values(got, want, dtype), f"{name}: {got!r} != {want!r}"
