"""A backend under another version, registered the way an application registers a backend
(``unirun.register_backend(..., replace=True)``): how the kit checks that the compile cache keys
builds by the plugin's and the engine's versions without patching unirun's internals."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import replace
from importlib.metadata import entry_points
from pathlib import Path

import unirun
from unirun import _registry
from unirun.backend import (
    Backend,
    CompileRequest,
    CompileResult,
    DeviceInfo,
    Executable,
    LoadRequest,
    Probe,
)
from unirun.source import OnnxModel

from .._support import backend_object, status

__all__ = ["StandIn", "versioned"]

#: The contract's optional methods (the ``Supports*`` protocols of :mod:`unirun.backend`): a
#: stand-in has one exactly when the backend has it.
_OPTIONAL = ("map_error", "unsupported_ops", "diagnose", "native_runner")


class StandIn:
    """``backend`` as another version of itself: ``plugin_version`` is the plugin's version and
    ``probe()`` reports ``engine_version`` (when given) as the engine's; everything else is the
    backend's own."""

    def __init__(
        self, backend: Backend, probe: Probe, plugin_version: str, engine_version: str | None
    ) -> None:
        self.name = backend.name
        self.api_version = backend.api_version
        self.capabilities = backend.capabilities
        self.options_model = backend.options_model
        self.plugin_version = plugin_version
        self._backend = backend
        self._probe = replace(probe, version=engine_version or probe.version)
        for method in _OPTIONAL:
            if hasattr(backend, method):
                setattr(self, method, getattr(backend, method))

    def probe(self) -> Probe:
        return self._probe

    def devices(self) -> Sequence[DeviceInfo]:
        return self._backend.devices()

    def compile(self, model: OnnxModel, request: CompileRequest) -> CompileResult:
        return self._backend.compile(model, request)

    def load(self, request: LoadRequest) -> Executable:
        return self._backend.load(request)


@contextlib.contextmanager
def versioned(
    name: str, plugin_path: str | Path | None, *, plugin: str, engine: str | None = None
) -> Iterator[None]:
    """Within the block, backend ``name`` is its plugin at version ``plugin`` (and, when given,
    its engine at version ``engine``); afterwards the backend it was is back."""
    original = backend_object(name, plugin_path)
    probe, _ = status(name)
    stand_in = StandIn(original, probe, plugin, engine)
    unirun.register_backend(stand_in, name=name, replace=True)
    try:
        yield
    finally:
        if any(ep.name == name for ep in entry_points(group=_registry.GROUP)):
            unirun.unregister_backend(name)  # the installed plugin shows through again
        else:  # the backend was itself registered in this process
            unirun.register_backend(original, name=name, replace=True)
