"""Admission of a plugin: the checks a backend object passes before the core uses it (the
contract version, attributes, method signatures, capability types), each failure a sentence
that names what does not fit."""

from __future__ import annotations

import inspect
from typing import Any

from .backend import API_VERSION, Capabilities
from .device import DEVICE_KINDS

__all__ = ["capabilities_problem", "contract_problem", "device_io_problem", "version_problem"]

#: Device kinds whose memory the core's device tensors can address (``unirun.device_tensor``).
DEVICE_IO_KINDS = ("cuda",)


def version_problem(obj: Any, install: str) -> str | None:
    """A plugin for another contract API is refused with the upgrade to make (checked first:
    its methods then do not fit either, and the version says why)."""
    version = getattr(obj, "api_version", None)
    if not isinstance(version, int) or version == API_VERSION:
        return None
    fix = (
        "upgrade unirun: pip install -U unirun"
        if version > API_VERSION
        else f"upgrade the plugin: {install or 'pip install -U <plugin>'}"
    )
    return f"implements contract API {version}, but this unirun speaks API {API_VERSION}; {fix}"


#: Each method the core calls, with the arguments it passes (positionally), after ``self``.
_METHODS: dict[str, tuple[str, ...]] = {
    "probe": (),
    "devices": (),
    "compile": ("model", "request"),
    "load": ("request",),
}
#: Optional methods, checked the same way when a plugin has them.
_OPTIONAL: dict[str, tuple[str, ...]] = {
    "map_error": ("exc", "stage"),
    "unsupported_ops": ("model", "device", "shapes"),
    "diagnose": ("device",),
    "native_runner": ("model", "device"),
}


def contract_problem(obj: Any) -> str | None:
    missing = [
        a
        for a in ("name", "api_version", "capabilities", "options_model", *_METHODS)
        if not hasattr(obj, a)
    ]
    if missing:
        return f"does not implement the Backend contract (missing {', '.join(missing)})"
    if not isinstance(obj.api_version, int):
        return "declares a non-integer api_version"
    if not isinstance(obj.capabilities, Capabilities):
        return (
            f"declares capabilities of type {type(obj.capabilities).__name__}, not "
            "unirun.backend.Capabilities"
        )
    checks = {**_METHODS, **{m: a for m, a in _OPTIONAL.items() if hasattr(obj, m)}}
    for method, args in checks.items():
        problem = _signature_problem(getattr(obj, method), method, args)
        if problem:
            return problem
    return None


def _signature_problem(function: Any, method: str, args: tuple[str, ...]) -> str | None:
    """Whether ``function`` (bound) accepts exactly ``args`` positionally."""
    expected = f"{method}({', '.join(args)})"
    if not callable(function):
        return f"has a {method} attribute that is not a method; the contract needs {expected}"
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return None  # a builtin or extension method: cannot be checked, trust it
    try:
        signature.bind(*args)
    except TypeError:
        have = ", ".join(_param(p) for p in signature.parameters.values())
        return (
            f"has {method}({have}), which does not fit the contract's {expected} "
            f"(API {API_VERSION}); update the plugin to the contract in unirun.backend"
        )
    return None


def _param(p: inspect.Parameter) -> str:
    prefix = "*" if p.kind is p.VAR_POSITIONAL else "**" if p.kind is p.VAR_KEYWORD else ""
    return f"{prefix}{p.name}" + ("=…" if p.default is not p.empty else "")


def device_io_problem(obj: Any) -> str | None:
    """Whether an executable or context of a ``device_io`` backend has ``infer_device`` with
    the contract's signature; None when it fits."""
    if not hasattr(obj, "infer_device"):
        return (
            f"declares Capabilities.device_io, but its {type(obj).__name__} has no "
            "infer_device(feeds, outputs); this is a plugin bug"
        )
    return _signature_problem(obj.infer_device, "infer_device", ("feeds", "outputs"))


def capabilities_problem(caps: Capabilities) -> str | None:
    device_io = caps.device_io
    if not isinstance(device_io, tuple) or not all(isinstance(k, str) for k in device_io):
        return f"declares device_io={device_io!r}; it is a tuple of device kinds, e.g. ('cuda',)"
    undeclared = [k for k in device_io if k not in caps.device_kinds]
    if undeclared:
        return (
            f"declares device_io for {', '.join(map(repr, undeclared))}, which is not among "
            "its device_kinds"
        )
    foreign = [k for k in device_io if k not in DEVICE_IO_KINDS]
    if foreign:
        return (
            f"declares device_io for {', '.join(map(repr, foreign))}; unirun exchanges device "
            f"tensors on {', '.join(map(repr, DEVICE_IO_KINDS))} only (host memory needs no "
            "declaration)"
        )
    unknown = [
        kind
        for kind in caps.device_kinds
        if kind not in DEVICE_KINDS and kind not in caps.new_device_kinds
    ]
    if unknown:
        return (
            f"declares device kind(s) {', '.join(map(repr, unknown))} that unirun does not know; "
            "describe new kinds in Capabilities.new_device_kinds"
        )
    return None
