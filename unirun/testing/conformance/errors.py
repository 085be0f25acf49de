"""Bad inputs and errors: wrong feeds, unreadable files, unsupported operators, invalid graphs,
failures at run time, undeclared devices and unknown options each give their typed
:mod:`unirun.errors` error, readable, and leave the model usable."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import unirun
from unirun.errors import (
    DeviceError,
    InferenceError,
    InputError,
    InvalidModelError,
    OptionsError,
    UnsupportedModelError,
)

from .. import models
from .._support import assert_readable, backend_object, normal, reshape_model, single_node, status
from .base import ConformanceBase, Engine, Params

__all__ = ["BAD_INPUTS", "ErrorTests"]

#: The wrong feeds of ``test_bad_inputs``.
BAD_INPUTS = (
    "missing",
    "unknown_name",
    "wrong_rank",
    "conflicting_dim",
    "int_to_float",
    "float64_to_float32",
    "too_many_positional",
)


class ErrorTests(ConformanceBase):
    """Does every mistake end in the right typed error, never an engine traceback?"""

    _params: ClassVar[Mapping[str, Params]] = {"bad_input": BAD_INPUTS}

    def test_bad_inputs(self, engine: Engine, bad_input: str) -> None:
        """Wrong feeds are InputError naming the input, never an engine error or a crash.

        Troubleshooting: the core validates feeds against ``Executable.inputs``; a failure here
        means those specs are wrong (a symbolic dimension reported as fixed, or the reverse, a
        wrong dtype) or the plugin validates on its own and raises something else.
        """
        x = normal((2, 3), 2)
        mask = np.ones((2, 3), bool)
        feeds: Any = {
            "missing": {"x": x},
            "unknown_name": {"x": x, "mask": mask, "bogus": x},
            "wrong_rank": {"x": x.reshape(6), "mask": mask},
            "conflicting_dim": {"x": normal((2, 4), 2), "mask": mask},
            "int_to_float": {"x": np.ones((2, 3), np.int32), "mask": mask},
            "float64_to_float32": {"x": x.astype(np.float64), "mask": mask},
            "too_many_positional": [x, mask, mask],
        }[bad_input]
        expected_name = {"missing": "mask", "unknown_name": "bogus"}.get(bad_input, "x")
        with self.load(engine, models.multi_io()) as m:
            with pytest.raises(InputError) as info:
                m(feeds)
            if bad_input != "too_many_positional":
                assert info.value.name == expected_name, str(info.value)
            ok = m({"x": x, "mask": mask})  # the model stays usable after a refused call
        np.testing.assert_array_equal(ok["masked"], x)

    def test_unreadable_model_file(self, tmp_path: Path) -> None:
        """Garbage, truncated and empty files are InvalidModelError before the engine sees them.

        Troubleshooting: the core parses the file first; if your plugin is reached, it received
        bytes rather than the parsed ``OnnxModel``; use ``model.proto``/``model.data``.
        """
        good = models.mlp().SerializeToString()
        for label, data in (
            ("garbage", b"\x08\x07not an onnx model at all" * 3),
            ("truncated", good[: len(good) // 2]),
            ("empty", b""),
        ):
            path = tmp_path / f"{label}.onnx"
            path.write_bytes(data)
            with pytest.raises(InvalidModelError):
                unirun.compile(path, backend=self.backend, cache=False)

    def test_unsupported_operator(self, engine: Engine) -> None:
        """An operator the engine lacks is UnsupportedModelError naming it, at compile time.

        Troubleshooting: map the engine's "no kernel"/"unknown op" failures to
        ``UnsupportedModelError(message, ops=[(node_name, op_type)])``; parse the op out of the
        engine's message if it gives nothing better, and strip multi-line engine traces.
        """
        model = single_node("FancyOp", domain="com.example.unirun")
        with pytest.raises(UnsupportedModelError, match="FancyOp") as info:
            unirun.compile(model, backend=engine.name, device=engine.device, cache=False)
        assert_readable(info.value)

    def test_invalid_graph(self, engine: Engine) -> None:
        """A graph that reads an undefined value is InvalidModelError when compiled.

        Troubleshooting: map the engine's graph-validation errors to ``InvalidModelError``;
        if the engine only notices at run time, validate in ``compile`` (``onnx.checker``).
        """
        model = single_node("Relu", inputs=("undefined_value",))
        with pytest.raises(InvalidModelError) as info:
            unirun.compile(model, backend=engine.name, device=engine.device, cache=False)
        assert_readable(info.value)

    def test_run_failure_is_inference_error(self, engine: Engine) -> None:
        """A request the engine rejects while running is InferenceError, and the model stays
        usable.

        Troubleshooting: wrap the engine's run call and raise ``InferenceError(...) from exc``
        with the engine's message (first line, without its source locations); do not leave
        the engine's request object in a broken state after a failure.
        """
        model = reshape_model()
        mode = engine.capabilities.dynamic_shapes
        if mode == "static":
            pytest.skip("a static backend fixes shapes at compile time; no run-time mismatch")
        shapes = None if mode == "free" else {"x": ((1,), (6,), (8,))}
        with self.load(engine, model, shapes=shapes) as m:
            with pytest.raises(InferenceError) as info:
                m(np.arange(7, dtype=np.float32))
            assert_readable(info.value)
            assert m(np.arange(6, dtype=np.float32))["y"].shape == (2, 3)

    def test_unavailable_device(self) -> None:
        """A device kind the backend does not declare is a DeviceError naming what it supports.

        Troubleshooting: list every kind the plugin handles in ``Capabilities.device_kinds``
        and only concrete, present devices in ``devices()``.
        """
        probe, _ = status(self.backend)
        if not probe.available:
            pytest.skip(f"backend {self.backend!r} is unavailable here: {probe.reason}")
        kinds = backend_object(self.backend, self.plugin_path).capabilities.device_kinds
        missing = next(k for k in ("npu", "ane", "cuda", "gpu", "cpu") if k not in kinds)
        with pytest.raises(DeviceError):
            unirun.compile(models.mlp(), backend=self.backend, device=missing)

    def test_options_are_validated(self, engine: Engine) -> None:
        """Unknown plugin options are refused with OptionsError naming them.

        Troubleshooting: make ``options_model`` a frozen pydantic model with
        ``extra="forbid"`` (or leave it None if the plugin takes no options).
        """
        with pytest.raises(OptionsError, match="definitely_not_an_option"):
            unirun.compile(
                models.mlp(),
                backend=engine.name,
                device=engine.device,
                options={"definitely_not_an_option": 1},
            )
