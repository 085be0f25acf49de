"""Dynamic shapes: sizes within the compiled bounds run, sizes outside them are refused with
an InputError, and a bounded or static backend asks for bounds."""

from __future__ import annotations

from typing import Any

import pytest

import unirun
from unirun.errors import InputError, OptionsError

from .. import models
from .._support import normal
from .base import ConformanceBase, Engine

__all__ = ["ShapeTests"]


class ShapeTests(ConformanceBase):
    """Does the backend honour its declared dynamic-shape mode?"""

    def test_dynamic_shapes_within_bounds(self, engine: Engine) -> None:
        """Sizes anywhere within the compiled bounds run and match the reference.

        Troubleshooting: "free" engines must take any size at run time without recompiling
        into the same buffers; "bounded" ones must turn ``shapes`` (min, opt, max) into the
        engine's form (an optimisation profile, a bounded partial shape) covering min and max,
        not only opt.
        """
        model = models.mlp()
        mode = engine.capabilities.dynamic_shapes
        if mode == "static":
            shapes: dict[str, Any] = {"x": (4, 16)}
            sizes = [4]
        else:
            shapes = {"x": ((1, 16), (4, 16), (8, 16))}
            sizes = [1, 3, 8]
        for bounds in [shapes] if mode != "free" else [None, shapes]:
            with self.load(engine, model, shapes=bounds) as m:
                for size in sizes + ([13] if bounds is None else []):
                    feeds = {"x": normal((size, 16), 7)}
                    self.assert_close(m(feeds), self.golden(model, feeds))

    def test_dynamic_shapes_outside_bounds(self, engine: Engine) -> None:
        """A size outside the compiled bounds is an InputError naming the input and the bounds.

        Troubleshooting: the core checks feeds against ``shapes`` before the engine runs; if
        the engine is reached, the plugin declared specs that disagree with ``shapes`` (report
        the bounded dimension as symbolic, or fix the compiled profile).
        """
        model = models.mlp()
        static = engine.capabilities.dynamic_shapes == "static"
        shapes = {"x": (4, 16)} if static else {"x": ((2, 16), (4, 16), (8, 16))}
        with self.load(engine, model, shapes=shapes) as m:
            for size in (1, 9) if not static else (3, 5):
                with pytest.raises(InputError, match="'x'") as info:
                    m({"x": normal((size, 16), 1)})
                assert info.value.name == "x"

    def test_dynamic_shapes_need_bounds(self, engine: Engine) -> None:
        """A bounded or static backend refuses a dynamic model without ``shapes``, saying so.

        Troubleshooting: the core raises OptionsError from ``Capabilities.dynamic_shapes``; if
        this fails, the declared mode is wrong: declare "free" only if any size works.
        """
        mode = engine.capabilities.dynamic_shapes
        if mode == "free":
            pytest.skip(f"backend {engine.name!r} takes dynamic shapes freely")
        with pytest.raises(OptionsError, match="give shapes= for"):
            unirun.compile(models.mlp(), backend=engine.name, device=engine.device)
