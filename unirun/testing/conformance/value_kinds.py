"""Values that are not tensors: sequences, maps and optionals at a model's edges, as
``Capabilities.value_kinds`` declares them. A backend that declares a kind runs models with
such inputs and outputs and gives the reference backend's values; one that does not refuses
them at compile time with ``UnsupportedModelError`` naming the input or output and its type."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import unirun
from unirun.errors import InputError, UnsupportedModelError
from unirun.source import graph_inputs, graph_outputs

from .. import models
from .base import ConformanceBase, Engine, Params

__all__ = ["VALUE_KINDS", "ValueKindTests", "assert_same_value"]

Array = np.ndarray[Any, Any]

#: The kinds of value besides tensors, one test each.
VALUE_KINDS = ("sequence", "map", "optional")


def _cases() -> dict[str, tuple[Callable[[], Any], list[dict[str, Any]]]]:
    """Per kind: a model and the feeds to run it on."""
    f32 = np.float32
    return {
        "sequence": (
            models.sequence_model,
            [
                {"items": [np.arange(3, dtype=f32), np.ones(1, f32)], "x": np.full(2, 5, f32)},
                {"items": [], "x": np.zeros(4, f32)},
            ],
        ),
        "map": (
            models.map_model,
            [{"features": {"a": 1.5, "c": -2.0}}, {"features": {"b": 4}}],
        ),
        "optional": (
            models.optional_model,
            [{"maybe": np.array([1, 2, 3], f32)}, {"maybe": None}],
        ),
    }


def assert_same_value(got: Any, want: Any, rtol: float, atol: float, where: str = "") -> None:
    """``got`` has ``want``'s structure (list lengths, map keys, presence, shapes and dtypes)
    and its numbers within ``rtol``/``atol``."""
    at = where or "value"
    if want is None:
        assert got is None, f"{at}: expected absent (None), got {type(got).__name__}"
        return
    if isinstance(want, list):
        assert isinstance(got, list), f"{at}: expected a list, got {type(got).__name__}"
        assert len(got) == len(want), f"{at}: {len(got)} items, expected {len(want)}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same_value(g, w, rtol, atol, f"{where}[{i}]")
        return
    if isinstance(want, Mapping):
        assert isinstance(got, Mapping), f"{at}: expected a dict, got {type(got).__name__}"
        assert set(got) == set(want), f"{at}: keys {sorted(got)}, expected {sorted(want)}"
        for key in want:
            assert_same_value(got[key], want[key], rtol, atol, f"{where}[{key!r}]")
        return
    g, w = np.asarray(got), np.asarray(want)
    assert g.shape == w.shape, f"{at}: shape {g.shape}, expected {w.shape}"
    if isinstance(want, np.ndarray):
        assert g.dtype == w.dtype, f"{at}: dtype {g.dtype}, expected {w.dtype}"
    if w.dtype.kind in "fc":
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=at)
    else:
        assert np.array_equal(g, w), f"{at}: {g!r} != {w!r}"


class ValueKindTests(ConformanceBase):
    """Sequences, maps and optionals through the backend, or refused as declared."""

    _params: ClassVar[Mapping[str, Params]] = {"value_kind": VALUE_KINDS}

    def _goldens(self, model: Any, feeds: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with unirun.load(model, backend=self.reference, cache=False) as golden:
            return [golden(f) for f in feeds]

    def test_value_kind(self, engine: Engine, value_kind: str) -> None:
        """A declared kind runs and gives the reference's values; another is refused, before
        the engine compiles, with ``UnsupportedModelError`` naming the value and its type.

        Troubleshooting: declare in ``Capabilities.value_kinds`` only the kinds the engine
        takes and returns through its Python API. The core hands the plugin a sequence as a
        list of C-contiguous arrays, a map as a dict (int or str keys, numpy scalars), an
        absent optional as None, and expects outputs in the same forms; convert to and from the
        engine's own containers at the boundary.
        """
        build, feeds = _cases()[value_kind]
        model = build()
        if value_kind not in engine.capabilities.value_kinds:
            name = {"sequence": "items", "map": "features", "optional": "maybe"}[value_kind]
            with pytest.raises(UnsupportedModelError, match=rf"'{name}': {value_kind[:3]}"):
                unirun.compile(model, backend=engine.name, device=engine.device, cache=False)
            return
        want = self._goldens(model, feeds)
        with unirun.load(model, backend=engine.name, device=engine.device, cache=False) as m:
            declared = graph_inputs(model) + graph_outputs(model)
            assert [(s.name, s.kind and s.kind.kinds) for s in (*m.inputs, *m.outputs)] == [
                (s.name, s.kind and s.kind.kinds) for s in declared
            ], "the executable reports other inputs/outputs than the graph declares"
            for feed, expected in zip(feeds, want, strict=True):
                got = m(feed)
                assert list(got) == list(expected)
                for name in expected:
                    assert_same_value(got[name], expected[name], 1e-5, 1e-6, name)

    def test_zipmap_classifier(self, engine: Engine) -> None:
        """A classifier as ``skl2onnx`` converts it (probabilities as a sequence of maps) gives
        the reference's labels and probabilities, or is refused with the way out (export
        without ZipMap).

        Troubleshooting: the sequence of maps comes back as a list of dicts, one per row, from
        class label (int or str) to probability; ONNX Runtime returns Python floats.
        """
        model = models.zipmap_classifier()
        x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
        if not {"sequence", "map"} <= set(engine.capabilities.value_kinds):
            with pytest.raises(UnsupportedModelError, match="zipmap"):
                unirun.compile(model, backend=engine.name, device=engine.device, cache=False)
            return
        (want,) = self._goldens(model, [{"X": x}])
        with unirun.load(model, backend=engine.name, device=engine.device, cache=False) as m:
            got = m(x)
        assert_same_value(got["label"], want["label"], 0, 0, "label")
        assert_same_value(got["probabilities"], want["probabilities"], 1e-5, 1e-6, "proba")
        assert all(isinstance(row, dict) and len(row) == 3 for row in got["probabilities"])

    def test_value_feeds_are_checked(self, engine: Engine) -> None:
        """A sequence, map or optional feed of the wrong form or type is an ``InputError``
        naming the input and the item or key, before the engine runs.

        Troubleshooting: this is the core's job (``unirun._value_io``); if the engine raised
        instead, the plugin's executable reported the input as a tensor: give its spec the
        value's type (``TensorSpec.of(name, kind)``).
        """
        kinds = set(engine.capabilities.value_kinds)
        if not kinds & {"sequence", "map", "optional"}:
            pytest.skip(f"backend {engine.name!r} carries tensors only")
        f32 = np.float32
        bad: list[tuple[Any, dict[str, Any], str]] = []
        if "sequence" in kinds:
            bad += [
                (models.sequence_model(), {"items": np.ones((2, 2), f32), "x": np.ones(1, f32)},
                 r"'items' expects seq\(float32\[\?\]\): a list, got ndarray"),
                (models.sequence_model(),
                 {"items": [np.ones(1, f32), np.ones(1, np.float64)], "x": np.ones(1, f32)},
                 r"'items' item 1 expects float32\[\?\], got dtype float64"),
                (models.sequence_model(), {"items": [np.ones((1, 1), f32)], "x": np.ones(1, f32)},
                 r"'items' item 0 expects float32\[\?\], got shape \(1, 1\)"),
            ]  # fmt: skip
        if "map" in kinds:
            bad += [
                (models.map_model(), {"features": {1: 2.0}}, r"'features' .* key 1 is int"),
                (models.map_model(), {"features": {"a": "x"}}, r"'features' key 'a'"),
                (models.map_model(), {"features": [("a", 1.0)]}, r"a dict, got list"),
            ]
        if "optional" in kinds:
            bad.append(
                (models.optional_model(), {"maybe": np.ones(2, f32)},
                 r"'maybe' expects float32\[3\], got shape \(2,\)")
            )  # fmt: skip
        loaded: dict[str, unirun.Model] = {}
        try:
            for model, feeds, message in bad:
                name = model.graph.name
                if name not in loaded:
                    loaded[name] = unirun.load(
                        model, backend=engine.name, device=engine.device, cache=False
                    )
                with pytest.raises(InputError, match=message):
                    loaded[name](feeds)
        finally:
            for m in loaded.values():
                m.close()

    def test_value_kinds_survive_an_artifact(self, engine: Engine, tmp_path: Path) -> None:
        """A saved artifact of a model with sequence inputs/outputs keeps their types and
        runs the same after loading.

        Troubleshooting: the manifest records each spec's ``kind``; a plugin's executable
        must report the same specs at load as at compile (build them the same way).
        """
        if "sequence" not in engine.capabilities.value_kinds:
            pytest.skip(f"backend {engine.name!r} does not declare sequences")
        model = models.sequence_model()
        feeds = _cases()["sequence"][1][0]
        artifact = unirun.compile(model, backend=engine.name, device=engine.device, cache=False)
        path = artifact.save(tmp_path / "model.unirun")
        with unirun.load(path) as m:
            assert [str(s) for s in m.inputs] == ["items: seq(float32[?])", "x: float32[?]"]
            assert m.inputs == artifact.inputs and m.outputs == artifact.outputs
            got = m(feeds)
        (want,) = self._goldens(model, [feeds])
        for name in want:
            assert_same_value(got[name], want[name], 1e-6, 1e-7, name)
