"""What every topic of the conformance kit shares: the class attributes a plugin's test class
sets, the checks on them, the generation of tests per device and parameter, the fixtures and
the helpers the tests call (``load``, ``shapes_for``, ``golden``, ``assert_close``).

A topic is a mixin of :class:`ConformanceBase` in its own module; it names the parameters its
tests take in ``_params`` (argument name → values, or a function of the test class giving
them) and validates its own class attributes in ``__init_subclass__``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import unirun
from unirun import _registry
from unirun.backend import Capabilities, ThreadSafety
from unirun.device import Device
from unirun.dtypes import DType
from unirun.errors import UnirunError
from unirun.source import graph_inputs

from .. import models
from .._support import (
    backend_object,
    matches_key,
    plugin_from_source,
    status,
    xfail_reason,
)

__all__ = ["MODELS", "SIZES", "STANDARD_DTYPES", "ConformanceBase", "Engine"]

Array = np.ndarray[Any, Any]
#: Values of one test parameter: a sequence, or a function of the test class that gives one.
Params = Sequence[Any] | Callable[[Any], Sequence[Any]]

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
#: The sizes given to the symbolic dimensions of :data:`MODELS`.
SIZES = {"N": 2, "batch": 3, "seq": 5, "M": 4, "K": 6}


@dataclass(frozen=True)
class Engine:
    """What an engine test gets: the backend's name, the concrete device and the capabilities
    (declared, with the test class's overrides applied)."""

    name: str
    device: Device
    capabilities: Capabilities


class ConformanceBase:
    """The attributes, fixtures and helpers of :class:`~unirun.testing.conformance.
    BackendConformance`; subclass that, not this."""

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
    #: A plugin source folder (holding ``pyproject.toml``) to make discoverable for these tests
    #: when the plugin is not installed; see :func:`~unirun.testing.conformance.
    #: plugin_from_source`.
    plugin_path: ClassVar[str | Path | None] = None
    #: Known failures: standard test name, optionally ``[param-ids]``, → reason.
    xfail: ClassVar[Mapping[str, str]] = {}

    #: Standard test name → its function; filled in when the suite is composed.
    _standard: ClassVar[Mapping[str, Callable[..., Any]]] = {}
    #: A topic's test parameters (argument name → values); "device" comes from the class.
    _params: ClassVar[Mapping[str, Params]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__name__.startswith("Test") and not isinstance(getattr(cls, "backend", None), str):
            raise TypeError(f"{cls.__name__} must set `backend` to the backend's registered name")
        problems = []
        for name, original in cls._standard.items():
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
            if name not in cls._standard:
                raise TypeError(f"{cls.__name__}.xfail names {key!r}, which is not a standard test")
            if not isinstance(reason, str) or not reason.strip():
                raise TypeError(f"{cls.__name__}.xfail[{key!r}] needs a reason")

    # -- generation and fixtures ----------------------------------------------------------------

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        cls = type(self)
        name = metafunc.function.__name__
        params = cls._parameters()
        argnames = [a for a in (*params, "device") if a in metafunc.fixturenames]
        if not argnames or name not in cls._standard:
            return
        values: list[Sequence[Any]] = []
        for arg in argnames:
            given = cls._device_kinds() if arg == "device" else params[arg]
            values.append(given(cls) if callable(given) else given)
        combos = []
        for combo in itertools.product(*values):
            ids = [str(v) for v in combo]
            marks = [
                pytest.mark.xfail(reason=reason, strict=True)
                for key, reason in cls.xfail.items()
                if matches_key(key, name, ids)
            ]
            combos.append(pytest.param(*combo, id="-".join(ids), marks=marks))
        metafunc.parametrize(argnames, combos)

    @classmethod
    def _parameters(cls) -> dict[str, Params]:
        """Every topic's ``_params``, in the order the topics are composed."""
        found: dict[str, Params] = {}
        for klass in reversed(cls.__mro__):
            found.update(vars(klass).get("_params", {}))
        return found

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


def standard_tests(suite: type[ConformanceBase]) -> dict[str, Callable[..., Any]]:
    """The standard tests of a composed ``suite``: every ``test_*`` its topics define. Two
    topics defining the same name would hide one of them, so that is refused."""
    found: dict[str, Callable[..., Any]] = {}
    where: dict[str, str] = {}
    for topic in suite.__mro__:
        for name, fn in vars(topic).items():
            if not (name.startswith("test_") and callable(fn)):
                continue
            if name in found:
                raise TypeError(
                    f"conformance topics {where[name]} and {topic.__name__} both define {name}"
                )
            found[name], where[name] = fn, topic.__name__
    return found
