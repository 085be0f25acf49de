"""The conformance suite every unirun backend plugin runs. Subclass it, name the backend, done::

    from unirun.testing.conformance import BackendConformance

    class TestMyEngineConformance(BackendConformance):
        backend = "myengine"

What the backend can do is read from its declared :class:`~unirun.Capabilities`; a class
attribute of the same name (``devices``, ``dtypes``, ``precisions``, ``dynamic_shapes``,
``thread_safety``) overrides it. Tests that need a device are generated once per device kind and
skip, saying why, where the backend or the device is unavailable; tests for a capability the
backend does not declare skip with that reason, or check that it is refused cleanly.

A standard test cannot be dropped or replaced silently: redefining one in a subclass is an error
unless the new definition carries ``pytest.mark.xfail(reason=...)``. The simpler way to record a
known failure is the ``xfail`` mapping, ``{"test_name": reason}`` or ``{"test_name[bfloat16]":
reason}`` for some parameters only; those xfails are strict, so a fixed failure is noticed.

Every standard test's docstring ends with a *Troubleshooting* paragraph: pytest prints it with
the failing source, and it says what a plugin usually gets wrong there. Golden outputs come from
the ``reference`` backend (ONNX's own ``onnx.reference`` evaluator).
"""

from __future__ import annotations

import gc
import itertools
import json
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import unirun
from unirun import _registry
from unirun.artifact import manifest_digest
from unirun.backend import (
    API_VERSION,
    Backend,
    Capabilities,
    DeviceInfo,
    Int8Form,
    Probe,
    ThreadSafety,
)
from unirun.device import Device
from unirun.dtypes import DType
from unirun.errors import (
    ArtifactError,
    BackendNotFoundError,
    BackendUnavailableError,
    DeviceError,
    InferenceError,
    InputError,
    InvalidModelError,
    ModelClosedError,
    OptionsError,
    UnirunError,
    UnsupportedModelError,
)
from unirun.source import graph_inputs, graph_outputs

from . import models
from ._support import (
    NAN_CASES,
    aliasing_model,
    assert_readable,
    assert_shape_agrees,
    backend_object,
    child_env,
    edge_values,
    feeds_for,
    matches_key,
    nan_model,
    normal,
    plugin_from_source,
    reshape_model,
    same_values,
    single_node,
    status,
    xfail_reason,
)
from .onnx_backend import node_cases, onnx_backend, run_case

__all__ = [
    "CORE_NODE_TESTS",
    "STANDARD_DTYPES",
    "BackendConformance",
    "Engine",
    "plugin_from_source",
]

Array = np.ndarray[Any, Any]

#: The dtypes every backend is checked against: declared ones must round-trip bit for bit,
#: others skip. A backend declaring more (int2, float4…) gets those checked too.
STANDARD_DTYPES: tuple[DType, ...] = (
    DType.FLOAT32,
    DType.FLOAT16,
    DType.BFLOAT16,
    DType.FLOAT64,
    DType.INT8,
    DType.INT16,
    DType.INT32,
    DType.INT64,
    DType.UINT8,
    DType.UINT16,
    DType.UINT32,
    DType.UINT64,
    DType.BOOL,
    DType.STRING,
    DType.FLOAT8_E4M3FN,
    DType.FLOAT8_E5M2,
    DType.INT4,
    DType.UINT4,
)

#: Models every backend must run like the reference does (symbolic sizes given at run time).
MODELS: dict[str, Callable[[], Any]] = {
    "conv_net": lambda: models.conv_net(size=8),
    "mlp": models.mlp,
    "matmul_symbolic": models.matmul_symbolic,
    "embedding": models.embedding_model,
    "multi_io": models.multi_io,
}
_SIZES = {"N": 2, "batch": 3, "seq": 5, "M": 4, "K": 6}

#: Node tests of the ONNX corpus that any engine running fp32 models is expected to pass.
CORE_NODE_TESTS = (
    "test_abs",
    "test_add_bcast",
    "test_relu",
    "test_sigmoid",
    "test_tanh",
    "test_softmax_axis_1",
    "test_matmul_2d",
    "test_gemm_default_no_bias",
    "test_conv_with_strides_padding",
    "test_maxpool_2d_default",
    "test_averagepool_2d_default",
    "test_batchnorm_example",
    "test_reshape_reduced_dims",
    "test_transpose_default",
    "test_concat_2d_axis_0",
    "test_gather_0",
    "test_reduce_mean_default_axes_keepdims_example",
    "test_where_example",
    "test_flatten_axis1",
    "test_cast_FLOAT_to_FLOAT16",
)

_BAD_INPUTS = (
    "missing",
    "unknown_name",
    "wrong_rank",
    "conflicting_dim",
    "int_to_float",
    "float64_to_float32",
    "too_many_positional",
)
_TAMPERING = ("payload_bytes", "payload_missing", "manifest_garbage", "runtime_version")
_PRECISIONS = ("fp32", "fp16", "bf16", "int8")

#: Parameter values of the standard tests, by argument name ("device" comes from the class).
_PARAMS: dict[str, Sequence[Any]] = {
    "model_name": tuple(MODELS),
    "bad_input": _BAD_INPUTS,
    "tampering": _TAMPERING,
    "precision": _PRECISIONS,
    "node_test": CORE_NODE_TESTS,
    "nan_case": NAN_CASES,
}


@dataclass(frozen=True)
class Engine:
    """What an engine test gets: the backend's name, the concrete device and the capabilities
    (declared, with the test class's overrides applied)."""

    name: str
    device: Device
    capabilities: Capabilities


# -- the suite ---------------------------------------------------------------------------------


class BackendConformance:
    """Subclass as ``Test<Engine>Conformance`` and set ``backend``; see the module docstring."""

    #: The backend's registered name (its ``unirun.backends`` entry point).
    backend: ClassVar[str]
    #: Device kinds to generate engine tests for; default ``Capabilities.device_kinds``.
    devices: ClassVar[Sequence[str] | None] = None
    #: Default ``Capabilities.dtypes``.
    dtypes: ClassVar[Sequence[DType | str] | None] = None
    #: Default ``Capabilities.precisions``.
    precisions: ClassVar[Sequence[str] | None] = None
    #: ``"free"``, ``"bounded"`` or ``"static"``; default ``Capabilities.dynamic_shapes``.
    dynamic_shapes: ClassVar[str | None] = None
    #: Default ``Capabilities.thread_safety``.
    thread_safety: ClassVar[ThreadSafety | str | None] = None
    #: The backend golden outputs come from.
    reference: ClassVar[str] = "reference"
    #: (rtol, atol) against the reference, per precision.
    tolerance: ClassVar[Mapping[str, tuple[float, float]]] = {
        "fp32": (1e-4, 1e-5),
        "fp16": (3e-2, 3e-2),
        "bf16": (8e-2, 8e-2),
    }
    #: Modules of the engine SDK that importing the plugin and building the backend object must
    #: not import (checked in a fresh interpreter); empty skips the check.
    engine_modules: ClassVar[Sequence[str]] = ()
    #: A plugin source folder (holding ``pyproject.toml``) to make discoverable for these tests
    #: when the plugin is not installed; see :func:`plugin_from_source`.
    plugin_path: ClassVar[str | Path | None] = None
    #: Known failures: standard test name, optionally ``[param-ids]``, → reason.
    xfail: ClassVar[Mapping[str, str]] = {}
    #: NaN handling that differs from IEEE propagation (what ONNX's reference does): a case of
    #: ``test_nan_propagates`` (an operator such as ``"Relu"``, or ``"conv_net"``) → what the
    #: engine does instead and why. Declared data, not a failure: the test then passes whether
    #: or not this machine's kernels swallow NaN, and documentation can list the difference.
    nan_swallowing: ClassVar[Mapping[str, str]] = {}

    _standard: ClassVar[dict[str, Callable[..., Any]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__name__.startswith("Test") and not isinstance(getattr(cls, "backend", None), str):
            raise TypeError(f"{cls.__name__} must set `backend` to the backend's registered name")
        problems = []
        for name, original in BackendConformance._standard.items():
            current = getattr(cls, name, None)
            if current is original:
                continue
            if not callable(current) or not xfail_reason(current):
                problems.append(name)
        if problems:
            raise TypeError(
                f"{cls.__name__} drops or redefines standard conformance test(s) "
                f"{', '.join(problems)}; a redefinition must carry "
                "@pytest.mark.xfail(reason='why'), or list the test in `xfail` instead"
            )
        for key, reason in cls.xfail.items():
            name = key.split("[", 1)[0]
            if name not in BackendConformance._standard:
                raise TypeError(f"{cls.__name__}.xfail names {key!r}, which is not a standard test")
            if not isinstance(reason, str) or not reason.strip():
                raise TypeError(f"{cls.__name__}.xfail[{key!r}] needs a reason")
        for case, reason in cls.nan_swallowing.items():
            if case not in NAN_CASES:
                raise TypeError(
                    f"{cls.__name__}.nan_swallowing names {case!r}; the cases are "
                    f"{', '.join(NAN_CASES)}"
                )
            if not isinstance(reason, str) or not reason.strip():
                raise TypeError(f"{cls.__name__}.nan_swallowing[{case!r}] needs a reason")

    # -- generation and fixtures ----------------------------------------------------------------

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        cls = type(self)
        name = metafunc.function.__name__
        argnames = [a for a in (*_PARAMS, "dtype", "device") if a in metafunc.fixturenames]
        if not argnames or name not in BackendConformance._standard:
            return
        values: list[Sequence[Any]] = []
        for arg in argnames:
            if arg == "device":
                values.append(cls._device_kinds())
            elif arg == "dtype":
                declared = cls._declared().dtypes
                extra = [d for d in declared if d not in STANDARD_DTYPES]
                values.append([*STANDARD_DTYPES, *extra])
            else:
                values.append(_PARAMS[arg])
        params = []
        for combo in itertools.product(*values):
            ids = [str(v) for v in combo]
            marks = [
                pytest.mark.xfail(reason=reason, strict=True)
                for key, reason in cls.xfail.items()
                if matches_key(key, name, ids)
            ]
            params.append(pytest.param(*combo, id="-".join(ids), marks=marks))
        metafunc.parametrize(argnames, params)

    @pytest.fixture(autouse=True)
    def _unirun_isolation(
        self, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An empty compile cache per test and no backend override from the environment."""
        monkeypatch.setenv("UNIRUN_CACHE_DIR", str(tmp_path_factory.mktemp("unirun-cache")))
        monkeypatch.delenv("UNIRUN_BACKEND", raising=False)

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _plugin_on_path(cls) -> Iterator[None]:
        path = cls.plugin_path
        if path is None or cls.backend in _registry._all_entries():
            yield
            return
        with plugin_from_source(path):
            yield

    @pytest.fixture
    def engine(self, device: str) -> Engine:
        """The backend on ``device``; skips with the reason when either is unavailable here."""
        probe, devices = status(self.backend)
        if not probe.available:
            pytest.skip(f"backend {self.backend!r} is unavailable here: {probe.reason}")
        wanted = Device.parse(device)
        if wanted.kind == "auto":
            return Engine(self.backend, wanted, self._declared())
        for info in devices:
            if wanted.matches(info.device):
                return Engine(self.backend, info.device, self._declared())
        have = ", ".join(str(i.device) for i in devices) or "none"
        pytest.skip(f"backend {self.backend!r} has no {device} device here (it has: {have})")

    @classmethod
    def _declared(cls) -> Capabilities:
        caps: Capabilities = backend_object(cls.backend, cls.plugin_path).capabilities
        overrides: dict[str, Any] = {}
        if cls.devices is not None:
            overrides["device_kinds"] = tuple(cls.devices)
        if cls.dtypes is not None:
            overrides["dtypes"] = tuple(DType.parse(d) for d in cls.dtypes)
        if cls.precisions is not None:
            overrides["precisions"] = tuple(cls.precisions)
        if cls.dynamic_shapes is not None:
            overrides["dynamic_shapes"] = cls.dynamic_shapes
        if cls.thread_safety is not None:
            overrides["thread_safety"] = ThreadSafety(cls.thread_safety)
        declared: Capabilities = replace(caps, **overrides)
        return declared

    @classmethod
    def _device_kinds(cls) -> Sequence[str]:
        try:
            return cls._declared().device_kinds or ("cpu",)
        except UnirunError:
            return ("cpu",)  # the engine fixture then reports why the backend cannot be used

    # -- helpers for the tests ------------------------------------------------------------------

    def load(self, engine: Engine, source: Any, **kwargs: Any) -> unirun.Model:
        return unirun.load(source, backend=engine.name, device=engine.device, **kwargs)

    def shapes_for(self, engine: Engine, model: Any, sizes: Mapping[str, int]) -> dict[str, Any]:
        """``shapes=`` for the backend's dynamic-shape mode: none when shapes are free, bounds
        around ``sizes`` when they must be bounded, the exact sizes when static."""
        mode = engine.capabilities.dynamic_shapes
        shapes: dict[str, Any] = {}
        if mode == "free":
            return shapes
        for spec in graph_inputs(model):
            if spec.is_static or spec.shape is None:
                continue
            opt = tuple(d if isinstance(d, int) else sizes[d] for d in spec.shape)
            if mode == "static":
                shapes[spec.name] = opt
            else:
                lo = tuple(d if isinstance(d, int) else 1 for d in spec.shape)
                hi = tuple(d if isinstance(d, int) else 2 * sizes[d] for d in spec.shape)
                shapes[spec.name] = (lo, opt, hi)
        return shapes

    def golden(self, model: Any, feeds: Mapping[str, Array]) -> dict[str, Array]:
        """The reference backend's outputs for ``feeds``."""
        with unirun.load(model, backend=self.reference, cache=False) as ref:
            return ref(dict(feeds))

    def assert_close(
        self, got: Mapping[str, Array], want: Mapping[str, Array], precision: str = "fp32"
    ) -> None:
        rtol, atol = self.tolerance[precision]
        assert list(got) == list(want), f"output names {list(got)}, expected {list(want)}"
        for name, expected in want.items():
            value = got[name]
            assert value.dtype == expected.dtype, f"{name}: {value.dtype}, not {expected.dtype}"
            assert value.shape == expected.shape, f"{name}: {value.shape}, not {expected.shape}"
            np.testing.assert_allclose(value, expected, rtol=rtol, atol=atol, err_msg=name)

    # -- the contract ---------------------------------------------------------------------------

    def test_contract(self) -> None:
        """The object the entry point builds satisfies the Backend contract.

        Troubleshooting: the factory named by the entry point must return (or be) an object
        with ``name`` (lowercase, the entry point's name), ``api_version`` equal to
        ``unirun.API_VERSION``, a ``Capabilities`` instance, ``options_model`` (None or a frozen
        pydantic model with ``extra="forbid"``), and the methods ``probe``, ``devices``,
        ``compile`` and ``load``. Build all of it without importing the engine SDK.
        """
        backend = backend_object(self.backend, self.plugin_path)
        assert isinstance(backend, Backend), "the object misses part of the Backend protocol"
        assert backend.name == self.backend and backend.name == backend.name.lower()
        assert backend.api_version == API_VERSION
        caps = backend.capabilities
        assert isinstance(caps, Capabilities)
        assert caps.device_kinds and all(isinstance(k, str) for k in caps.device_kinds)
        assert set(caps.precisions) <= set(_PRECISIONS), caps.precisions
        # int8 and its forms go together: the forms say how the core makes int8 models for it.
        assert ("int8" in caps.precisions) == bool(caps.int8_forms), caps.int8_forms
        assert set(caps.int8_forms) <= set(caps.device_kinds) | {"auto"}, caps.int8_forms
        assert all(
            forms and all(isinstance(f, Int8Form) for f in forms)
            for forms in caps.int8_forms.values()
        ), caps.int8_forms
        assert all(isinstance(d, DType) for d in caps.dtypes)
        assert caps.dynamic_shapes in ("free", "bounded", "static")
        assert isinstance(caps.thread_safety, ThreadSafety)
        assert set(caps.priority) <= set(caps.device_kinds) | {"auto"}
        options = backend.options_model
        if options is not None:
            config = options.model_config
            assert config.get("frozen") is True, "options_model must be frozen"
            assert config.get("extra") == "forbid", "options_model must forbid unknown fields"

    def test_probe(self) -> None:
        """``probe()`` never raises and says why the backend cannot run, in words.

        Troubleshooting: catch everything in ``probe()`` (ImportError, a broken native library,
        a driver missing) and return ``Probe(False, "what is missing; the command that fixes
        it")``; add ``can_compile=True`` only if ``compile()`` really works without the engine.
        When available, report the engine's version and list at least one concrete device whose
        kind is among ``Capabilities.device_kinds``.
        """
        probe, devices = status(self.backend)
        assert isinstance(probe, Probe)
        info = next(i for i in unirun.backends() if i.name == self.backend)
        assert info.available == probe.available and info.reason == probe.reason
        if not probe.available:
            assert probe.reason.strip(), "an unavailable backend must say why"
            static = models.mlp(batch=2)
            if probe.can_compile:  # builds here, runs elsewhere (Core ML on Linux)
                artifact = unirun.compile(static, backend=self.backend, cache=False)
                assert artifact.backend == self.backend
                with pytest.raises(BackendUnavailableError, match=re.escape(probe.reason[:40])):
                    unirun.load(static, backend=self.backend, cache=False)
                return
            with pytest.raises(BackendUnavailableError, match=re.escape(probe.reason[:40])):
                unirun.compile(static, backend=self.backend, cache=False)
            return
        assert isinstance(probe.version, str) and probe.version, "report the engine's version"
        assert devices, "an available backend lists at least one device"
        kinds = type(self)._declared().device_kinds
        for info_ in devices:
            assert isinstance(info_, DeviceInfo)
            assert info_.device.kind in kinds, f"{info_.device} is not a declared device kind"
            if info_.device.kind not in ("cpu", "auto"):
                assert info_.device.index is not None, f"{info_.device} is not concrete"

    def test_discovered_through_entry_point(self) -> None:
        """The backend is found through the ``unirun.backends`` entry-point group.

        Troubleshooting: declare ``[project.entry-points."unirun.backends"] NAME =
        "your_package:YourBackend"`` in pyproject.toml and reinstall (``pip install -e .``):
        entry points are read from the installed metadata, not from the source tree.
        """
        from importlib.metadata import entry_points

        found = [ep for ep in entry_points(group=_registry.GROUP) if ep.name == self.backend]
        assert found, f"no entry point named {self.backend!r} in group {_registry.GROUP}"
        info = next(i for i in unirun.backends() if i.name == self.backend)
        assert info.installed and info.plugin_version, "the distribution's version is unknown"

    def test_import_does_not_load_the_engine(self) -> None:
        """Importing the plugin and building its backend object imports no engine SDK.

        Troubleshooting: import the SDK inside ``probe()``/``compile()``/``load()`` (or a cached
        helper they call), never at module level; translation tables must not need it either.
        Set ``engine_modules`` on the test class to the SDK's top-level module names.
        """
        if not self.engine_modules:
            pytest.skip("the test class names no engine_modules to watch")
        code = (
            "import importlib.metadata as m, json, sys\n"
            f"ep = [e for e in m.entry_points(group={_registry.GROUP!r}) if e.name == "
            f"{self.backend!r}][0]\n"
            "obj = ep.load(); obj = obj() if isinstance(obj, type) else obj\n"
            "print(json.dumps(sorted(sys.modules)))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env=child_env(),
        )
        loaded = set(json.loads(out.stdout.splitlines()[-1]))
        leaked = [m for m in self.engine_modules if m in loaded]
        assert not leaked, f"building backend {self.backend!r} imported {', '.join(leaked)}"

    def test_unknown_backend_name(self) -> None:
        """A misspelt backend name is a BackendNotFoundError listing the known ones.

        Troubleshooting: this is the core's job; if it fails, another plugin registered under
        a name the test did not expect, or the registry was left patched by an earlier test.
        """
        with pytest.raises(BackendNotFoundError, match=re.escape(self.backend)):
            unirun.compile(models.mlp(), backend=f"{self.backend}-no-such-backend")

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

    # -- models and values ---------------------------------------------------------------------

    def test_signature(self, engine: Engine) -> None:
        """``Model.inputs``/``outputs`` report names, order, dtypes and shapes as in the graph.

        Troubleshooting: build the specs from what the engine reports after compiling, in the
        graph's order; a fixed dimension is an int and a symbolic one a string (keep the model's
        name where the engine keeps it, "?" otherwise). An engine that renames or reorders
        inputs needs a name map kept in the artifact's ``extra``.
        """
        for name in ("multi_io", "embedding", "matmul_symbolic"):
            model = MODELS[name]()
            with self.load(engine, model, shapes=self.shapes_for(engine, model, _SIZES)) as m:
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
        feeds = feeds_for(model, _SIZES)
        with self.load(engine, model, shapes=self.shapes_for(engine, model, _SIZES)) as m:
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
        feeds = feeds_for(model, _SIZES)
        shapes = self.shapes_for(engine, model, _SIZES)
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
        shapes = self.shapes_for(engine, model, _SIZES)
        with self.load(engine, model, precision="int8", shapes=shapes, calibration=samples) as m:
            record = m.artifact.manifest.extra["quantization"]
            feeds = {"image": normal((2, 3, 16, 16), 99)}
            got = m(feeds)
        assert record["form"] in {
            f.value for f in engine.capabilities.int8_forms[engine.device.kind]
        }
        summary = compare_outputs([got], [self.golden(model, feeds)])
        assert within_bound(summary["logits"]), summary

    # -- dynamic shapes ------------------------------------------------------------------------

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

    # -- errors --------------------------------------------------------------------------------

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

    def test_tampered_artifact(self, engine: Engine, tampering: str, tmp_path: Path) -> None:
        """A saved artifact whose payload or manifest was altered is refused with ArtifactError.

        Troubleshooting: write every payload file into ``request.directory`` before
        ``compile`` returns (files written later are not checksummed), and read them back in
        ``load`` only through ``request.file(name)``. When the engine only loads what its own
        version built, set ``Capabilities.pins_runtime_version``.
        """
        if tampering == "runtime_version" and not engine.capabilities.pins_runtime_version:
            pytest.skip(f"backend {engine.name!r} does not pin the engine version of artifacts")
        model = models.mlp()
        saved = unirun.compile(model, backend=engine.name, device=engine.device, cache=False).save(
            tmp_path / "model.unirun"
        )
        manifest = json.loads((saved / "manifest.json").read_text(encoding="utf-8"))
        payload = saved / manifest["files"][0]["path"]
        if tampering == "payload_bytes":
            data = bytearray(payload.read_bytes())
            data[len(data) // 2] ^= 0xFF
            payload.write_bytes(bytes(data))
        elif tampering == "payload_missing":
            payload.unlink()
        elif tampering == "manifest_garbage":
            (saved / "manifest.json").write_text("{ not json", encoding="utf-8")
        else:
            manifest["runtime_version"] = "0.0.0-some-other-build"
            manifest["sha256"] = manifest_digest(manifest)  # consistent, so the version counts
            (saved / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        with pytest.raises(ArtifactError):
            unirun.load(saved)

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

    # -- artifacts and the cache ---------------------------------------------------------------

    def test_artifact_round_trip(self, engine: Engine, tmp_path: Path) -> None:
        """A saved artifact loads from another folder, after the build is gone, with the same
        results.

        Troubleshooting: keep no absolute paths in the manifest's ``extra`` or in the payload
        (write engine caches under ``target.cache_dir``, not next to the model), and put
        everything ``load`` needs into the artifact.
        """
        model = models.conv_net(size=8)
        feeds = feeds_for(model, _SIZES)
        shapes = self.shapes_for(engine, model, _SIZES)
        artifact = unirun.compile(
            model, backend=engine.name, device=engine.device, shapes=shapes, cache=False
        )
        first = tmp_path / "first.unirun"
        artifact.save(first)
        del artifact
        gc.collect()  # the unsaved build directory goes away with its artifact
        moved = shutil.move(str(first), str(tmp_path / "elsewhere" / "model.unirun"))
        with unirun.load(moved) as m:
            assert (m.backend, m.cache_status) == (engine.name, "artifact")
            assert m.device.kind == engine.device.kind
            manifest = m.artifact.manifest
            assert manifest.plugin_version and manifest.source_sha256
            self.assert_close(m(feeds), self.golden(model, feeds))

    def test_cache_invalidation(self, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
        """The compile cache hits for the same build and misses when options, the plugin's
        version or the engine's version change; a damaged entry is rebuilt.

        Troubleshooting: everything that changes the payload must reach the build key: put
        plugin options in ``options_model`` (not environment variables), report the engine's
        version in ``probe()``, and bump the plugin's version when its output changes.
        """
        model = models.mlp()

        def status(**kwargs: Any) -> str:
            with self.load(engine, model, **kwargs) as m:
                return m.cache_status

        assert status() == "miss"
        assert status() == "hit"
        assert status(threads=1) == "miss"
        assert status(optimization_level=1) == "miss"
        real = _registry.describe

        def bumped(plugin: str | None, engine_version: str | None) -> Any:
            def describe(name: str) -> tuple[Probe, tuple[DeviceInfo, ...], str | None]:
                probe, devices, version = real(name)
                if name != engine.name:
                    return probe, devices, version
                probe = replace(probe, version=engine_version or probe.version)
                return probe, devices, plugin or version

            return describe

        monkeypatch.setattr(_registry, "describe", bumped("999.0.0", None))
        assert status() == "miss", "a new plugin version must not reuse old builds"
        assert status() == "hit"
        monkeypatch.setattr(_registry, "describe", bumped(None, "999.0.0-engine"))
        assert status() == "miss", "a new engine version must not reuse old builds"
        monkeypatch.setattr(_registry, "describe", real)
        with self.load(engine, model) as m:
            entry = m.artifact.directory
        victim = next(p for p in sorted(entry.rglob("*")) if p.is_file() and p.suffix != ".json")
        victim.write_bytes(victim.read_bytes() + b"\0damage")
        assert status() == "rebuilt"

    # -- threads and lifecycle -----------------------------------------------------------------

    def test_concurrent_calls(self, engine: Engine) -> None:
        """Calls from many threads at once (the core serialises or pools as declared) give the
        results of serial calls; ``infer_async`` and ``map`` keep their order.

        Troubleshooting: declare ``ThreadSafety.CONCURRENT`` only if one executable really
        runs overlapping ``infer`` calls safely; with ``CONTEXTS``, ``create_context()`` must
        return independent contexts (own buffers, own request objects); otherwise ``SERIAL``.
        """
        model = models.conv_net(size=8)
        batches = [feeds_for(model, {"N": n}) for n in (1, 2, 3, 4, 2, 1)]
        shapes = self.shapes_for(engine, model, {"N": 4})
        with self.load(engine, model, shapes=shapes) as m:
            expected = [m(b)["logits"] for b in batches]
            errors: list[BaseException] = []
            start = threading.Barrier(len(batches))

            def worker(i: int) -> None:
                try:
                    start.wait()
                    for _ in range(4):
                        np.testing.assert_allclose(
                            m(batches[i])["logits"], expected[i], rtol=1e-6, atol=1e-6
                        )
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(batches))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert not errors, errors[0]
            mapped = [r["logits"] for r in m.map(batches)]
            futures = [m.infer_async(b) for b in batches]
            for got, fut, want in zip(mapped, futures, expected, strict=True):
                np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
                np.testing.assert_allclose(fut.result()["logits"], want, rtol=1e-6, atol=1e-6)

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

    def test_close(self, engine: Engine) -> None:
        """After ``close()`` every call raises ModelClosedError; closing twice is harmless; the
        context manager closes.

        Troubleshooting: ``Executable.close()`` releases the engine objects and must be
        idempotent; a call after it must not reach a freed engine object.
        """
        model = models.mlp()
        x = normal((2, 16), 5)
        with self.load(engine, model, shapes=self.shapes_for(engine, model, {"batch": 2})) as m:
            m({"x": x})
        assert m.closed
        m.close()
        with pytest.raises(ModelClosedError):
            m({"x": x})
        with pytest.raises(ModelClosedError):
            m.infer_async({"x": x})

    def test_close_while_running(self, engine: Engine) -> None:
        """``close()`` while other threads are inside ``infer``: each call returns a result or
        raises ModelClosedError, nothing else, and nothing crashes.

        Troubleshooting: let running calls keep the engine objects alive (hold references in
        the call, not only on the executable) and make ``close()`` drop the executable's own
        references only.
        """
        model = models.conv_net(size=8)
        feeds = feeds_for(model, {"N": 2})
        m = self.load(engine, model, shapes=self.shapes_for(engine, model, {"N": 2}))
        unexpected: list[BaseException] = []
        started = threading.Event()

        def worker() -> None:
            for _ in range(50):
                try:
                    started.set()
                    m(feeds)
                except ModelClosedError:
                    return
                except BaseException as exc:
                    unexpected.append(exc)
                    return

        threads = [threading.Thread(target=worker) for _ in range(3)]
        for t in threads:
            t.start()
        started.wait(5)
        m.close()
        for t in threads:
            t.join()
        assert not unexpected, repr(unexpected[0])

    # -- the ONNX operator corpus --------------------------------------------------------------

    def test_onnx_node(self, engine: Engine, node_test: str) -> None:
        """Core operators of the official ONNX node tests pass through the backend.

        Troubleshooting: run ``python -m unirun.testing.onnx_backend -b NAME --native -k
        NAME_OF_TEST -v`` to see the engine's own result next to unirun's; a test the engine
        fails natively too belongs in ``xfail`` with the engine's reason.
        """
        if "fp32" not in engine.capabilities.precisions:
            pytest.skip(f"backend {engine.name!r} does not compute in fp32")
        cases = node_cases(f"^{re.escape(node_test)}$")
        assert cases, f"the installed onnx has no node test {node_test}"
        for case in cases:
            used = {s.dtype for s in (*graph_inputs(case.model), *graph_outputs(case.model))}
            undeclared = sorted(str(d) for d in used - set(engine.capabilities.dtypes))
            if undeclared:
                pytest.skip(f"backend {engine.name!r} does not declare {', '.join(undeclared)}")
            outcome = run_case(onnx_backend(engine.name), case, str(engine.device))
            assert outcome.status == "pass", f"{outcome.stage}: {outcome.message}"


BackendConformance._standard = {
    name: fn
    for name, fn in vars(BackendConformance).items()
    if name.startswith("test_") and callable(fn)
}
