"""Backend discovery (entry points, read once, lazily) and backend/device selection."""

from __future__ import annotations

import difflib
import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from . import device as _device_vocabulary
from ._admission import capabilities_problem, contract_problem, version_problem
from .backend import Backend, Capabilities, DeviceInfo, Probe
from .device import register_device_kind
from .errors import (
    BackendNotFoundError,
    BackendUnavailableError,
    PluginIncompatibleError,
    UnirunError,
)

__all__ = [
    "BackendInfo",
    "backends",
    "get_backend",
    "register_backend",
    "unregister_backend",
]

log = logging.getLogger("unirun")

GROUP = "unirun.backends"

#: Install hints for well-known backend names (data only, as fsspec keeps next to its lazily
#: named implementations): ``unirun backends`` lists them when absent and an unknown-name error
#: prints the command. Nothing else in the core knows about any particular plugin.
KNOWN_PLUGINS: dict[str, str] = {
    "onnxruntime": "pip install unirun-onnxruntime",
    "openvino": "pip install unirun-openvino",
    "coreml": "pip install unirun-coreml",
    "tensorrt": "pip install 'unirun-tensorrt[cu13]'",
}


@dataclass(frozen=True)
class BackendInfo:
    """What ``unirun.backends()`` reports about one backend."""

    name: str
    available: bool
    reason: str = ""
    version: str | None = None  #: the engine's version
    plugin_version: str | None = None
    devices: tuple[DeviceInfo, ...] = ()
    capabilities: Capabilities | None = None
    install: str = ""  #: the command that installs or repairs it
    installed: bool = True
    can_compile: bool = False  #: unavailable to run, but ``unirun.compile`` works here


@dataclass
class _Entry:
    name: str
    factory: Callable[[], Any]
    dist: str | None = None
    dist_version: str | None = None
    backend: Backend | None = None
    error: UnirunError | None = None
    probe: Probe | None = None
    devices: tuple[DeviceInfo, ...] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def install(self) -> str:
        if self.dist:
            return f"pip install -U {self.dist}"
        return KNOWN_PLUGINS.get(self.name, "")


_lock = threading.Lock()
_entries: dict[str, _Entry] | None = None
_registered: dict[str, _Entry] = {}


def _all_entries() -> dict[str, _Entry]:
    global _entries
    with _lock:
        if _entries is None:
            found: dict[str, _Entry] = {}
            for ep in entry_points(group=GROUP):
                dist = getattr(ep, "dist", None)
                if ep.name in found:
                    log.warning("two plugins register backend %r; using the first", ep.name)
                    continue
                found[ep.name] = _Entry(
                    ep.name, ep.load, dist.name if dist else None, dist.version if dist else None
                )
            _entries = found
        return {**_entries, **_registered}


def _reset() -> None:
    """Forget discovered plugins (tests; after installing a plugin in a running process)."""
    global _entries
    with _lock:
        _entries = None


def register_backend(
    backend: Backend | Callable[[], Backend] | str,
    *,
    name: str | None = None,
    replace: bool = False,
) -> None:
    """Make a backend available in this process under its ``name``.

    ``backend`` is a backend object, a factory (a class or a function returning one), or a lazy
    ``"package.module:Factory"`` path imported on first use. A factory is not called until the
    backend is needed; its name comes from ``name=`` or the factory's ``name`` attribute (a
    lazy path needs ``name=``). A backend object is checked against the contract now.

    A name that an installed plugin or an earlier registration already uses is refused unless
    ``replace=True`` (an in-process backend must never shadow a plugin silently).
    """
    if isinstance(backend, str):
        if name is None:
            raise PluginIncompatibleError(
                f"register_backend({backend!r}) needs name=: a lazy path is not imported until "
                "the backend is used"
            )
        factory: Callable[[], Any] = _lazy(backend)
        instance = None
    elif _is_factory(backend):
        factory, instance = backend, None  # type: ignore[assignment]
        name = name or getattr(backend, "name", None)
    else:
        instance = backend
        factory = lambda: instance  # noqa: E731
        name = name or getattr(backend, "name", None)
    if not isinstance(name, str) or not name:
        raise PluginIncompatibleError("a backend needs a non-empty string attribute 'name'")
    entry = _Entry(name, factory)
    if instance is not None:
        _admit(entry, instance)  # pluggy-style: a wrong shape is refused at registration
    _all_entries()  # read the entry points first: "installed" must be known
    with _lock:
        installed = _entries is not None and name in _entries
        if not replace and (name in _registered or installed):
            where = "registered in this process" if name in _registered else "an installed plugin"
            raise PluginIncompatibleError(
                f"a backend named {name!r} is already {where}; pass replace=True to replace it"
            )
        _registered[name] = entry


def _lazy(path: str) -> Callable[[], Any]:
    module, sep, attr = path.partition(":")
    if not sep or not module or not attr:
        raise PluginIncompatibleError(
            f"a lazy backend path is 'package.module:Factory', not {path!r}"
        )

    def load() -> Any:
        target: Any = importlib.import_module(module)
        for part in attr.split("."):
            target = getattr(target, part)
        return target

    return load


def unregister_backend(name: str) -> None:
    """Forget a backend registered with :func:`register_backend` (installed plugins stay)."""
    with _lock:
        _registered.pop(name, None)


def _materialise(entry: _Entry) -> Backend:
    with entry.lock:
        if entry.backend is not None:
            return entry.backend
        if entry.error is not None:
            raise entry.error
        try:
            factory = entry.factory()
            obj = factory() if _is_factory(factory) else factory
        except Exception as exc:
            where = f" ({entry.dist} {entry.dist_version})" if entry.dist else ""
            entry.error = PluginIncompatibleError(
                f"backend plugin {entry.name!r}{where} failed to load: "
                f"{type(exc).__name__}: {exc}. Reinstall it: "
                f"{entry.install or 'pip install --force-reinstall <plugin>'}"
            )
            entry.error.__cause__ = exc
            raise entry.error from exc
        try:
            _admit(entry, obj)
        except PluginIncompatibleError as exc:
            entry.error = exc
            raise
        return entry.backend  # type: ignore[return-value]  # set by _admit


def _admit(entry: _Entry, obj: Any) -> None:
    """Check ``obj`` against the contract, register its device kinds, and keep it."""
    problem = version_problem(obj, entry.install) or contract_problem(obj)
    if problem is None:
        problem = capabilities_problem(obj.capabilities)
    if problem is not None:
        raise PluginIncompatibleError(f"backend plugin {entry.name!r} {problem}")
    for kind, description in obj.capabilities.new_device_kinds.items():
        register_device_kind(kind, description, gpu=kind in obj.capabilities.gpu_kinds)
    entry.backend = obj


def _is_factory(obj: Any) -> bool:
    return callable(obj) and (isinstance(obj, type) or not hasattr(obj, "probe"))


def _discover_device_kinds() -> None:
    """Load every installed plugin (cheap by contract: no engine import) so that the device
    kinds they add are known; called when a device string names an unknown kind."""
    for entry in _all_entries().values():
        try:
            _materialise(entry)
        except UnirunError:
            continue


_device_vocabulary._discover = _discover_device_kinds


def _probe(entry: _Entry, backend: Backend) -> Probe:
    with entry.lock:
        if entry.probe is None:
            try:
                entry.probe = backend.probe()
            except Exception as exc:  # the contract says probe never raises; don't trust it
                entry.probe = Probe(False, f"probe() raised {type(exc).__name__}: {exc}")
        return entry.probe


def _devices(entry: _Entry, backend: Backend) -> tuple[DeviceInfo, ...]:
    with entry.lock:
        if entry.devices is None:
            try:
                found = tuple(backend.devices())
            except Exception as exc:
                log.warning("backend %r failed to list devices: %s", entry.name, exc)
                found = ()
            declared = backend.capabilities.device_kinds
            wrong = sorted({str(i.device) for i in found if i.device.kind not in declared})
            if wrong:
                raise PluginIncompatibleError(
                    f"backend plugin {entry.name!r} lists device(s) {', '.join(wrong)} of a kind "
                    f"it does not declare (Capabilities.device_kinds: {', '.join(declared)}); "
                    "this is a plugin bug"
                )
            entry.devices = found
        return entry.devices


def canonical_name(name: str) -> str:
    """``name`` as the backend spells it (names match case-insensitively); ``name`` itself when
    no backend, installed or known, has it."""
    known = [*_all_entries(), *KNOWN_PLUGINS]
    if name in known:
        return name
    folded = name.strip().lower()
    return next((k for k in known if k.lower() == folded), name)


def get_backend(name: str, *, for_compile: bool = False) -> Backend:
    """The available backend called ``name`` (any case), or a typed error saying why it cannot
    be used.

    With ``for_compile``, a backend that cannot run here but can compile (``Probe.can_compile``)
    is returned too."""
    entries = _all_entries()
    name = canonical_name(name)
    entry = entries.get(name)
    if entry is None:
        known = sorted(set(entries) | set(KNOWN_PLUGINS))
        if name in KNOWN_PLUGINS:
            hint = f" Install it: {KNOWN_PLUGINS[name]}."
        else:
            close = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
        raise BackendNotFoundError(
            f"no backend named {name!r} is installed.{hint} Known backends: {', '.join(known)}"
        )
    backend = _materialise(entry)
    probe = _probe(entry, backend)
    if not probe.available and not (for_compile and probe.can_compile):
        raise BackendUnavailableError(f"backend {name!r} cannot run here: {probe.reason}")
    return backend


def backend_object(name: str) -> Backend:
    """The backend object called ``name``, available here or not (``probe()`` says which);
    ``BackendNotFoundError`` or ``PluginIncompatibleError`` if there is none to talk to."""
    entry = _all_entries().get(name)
    if entry is None:
        raise BackendNotFoundError(f"no backend named {name!r} is installed")
    return _materialise(entry)


def installed() -> list[str]:
    """The names of every backend installed or registered in this process (none probed)."""
    return list(_all_entries())


def describe(name: str) -> tuple[Probe, tuple[DeviceInfo, ...], str | None]:
    """Probe result, devices and plugin version of an available backend."""
    entry = _all_entries()[canonical_name(name)]
    backend = _materialise(entry)
    return _probe(entry, backend), _devices(entry, backend), entry.dist_version


def backends() -> list[BackendInfo]:
    """Every backend unirun can see, with availability, reason, versions and devices."""
    infos: list[BackendInfo] = []
    entries = _all_entries()
    for name, entry in entries.items():
        try:
            backend = _materialise(entry)
        except UnirunError as exc:
            infos.append(
                BackendInfo(
                    name, False, str(exc), plugin_version=entry.dist_version, install=entry.install
                )
            )
            continue
        probe = _probe(entry, backend)
        devices = _devices(entry, backend) if probe.available else ()
        infos.append(
            BackendInfo(
                name,
                probe.available,
                probe.reason,
                probe.version,
                entry.dist_version,
                devices,
                backend.capabilities,
                entry.install,
                can_compile=probe.available or probe.can_compile,
            )
        )
    for name, command in KNOWN_PLUGINS.items():
        if name not in entries:
            infos.append(
                BackendInfo(name, False, "not installed", install=command, installed=False)
            )
    return infos


# Selection (backend="auto", device="auto") lives in its own module; its names stay here too.
