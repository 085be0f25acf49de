"""The contract and discovery: the object a plugin's entry point builds, its ``probe()``, that
it is found through the entry point, that building it imports no engine SDK, and the error for
a misspelt backend name."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Sequence
from typing import ClassVar

import pytest

import unirun
from unirun import _registry
from unirun.backend import (
    API_VERSION,
    Backend,
    Capabilities,
    DeviceInfo,
    Int8Form,
    Probe,
    ThreadSafety,
)
from unirun.dtypes import DType
from unirun.errors import BackendNotFoundError, BackendUnavailableError

from .. import models
from .._support import backend_object, child_env, status
from .base import ConformanceBase
from .precision import PRECISIONS

__all__ = ["ContractTests"]


class ContractTests(ConformanceBase):
    """Is the backend a well-formed plugin? Needs no engine: runs where the engine is missing."""

    #: Modules of the engine SDK that importing the plugin and building the backend object must
    #: not import (checked in a fresh interpreter); empty skips the check.
    engine_modules: ClassVar[Sequence[str]] = ()

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
        assert set(caps.precisions) <= set(PRECISIONS), caps.precisions
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
