"""Choosing a backend and a device: ``backend="auto"`` (then ``$UNIRUN_BACKEND``),
``device="auto"``, and the candidates ``backend="fastest"`` measures."""

from __future__ import annotations

import os
from collections.abc import Sequence

from . import _registry
from .backend import Backend, DeviceInfo
from .device import GPU_KINDS, Device
from .errors import BackendNotFoundError, DeviceError, UnirunError

__all__ = ["candidate_names", "pick_device", "select"]


def pick_device(name: str, backend: Backend, request: Device) -> DeviceInfo:
    """The first device of ``backend`` that satisfies ``request``."""
    entry = _registry._all_entries()[_registry.canonical_name(name)]
    if request.kind == "auto" and "auto" in backend.capabilities.device_kinds:
        return DeviceInfo(request, "chosen by the engine")
    available = _registry._devices(entry, backend)
    for info in available:
        if request.matches(info.device):
            return info
    have = ", ".join(str(i.device) for i in available) or "none"
    kinds = backend.capabilities.device_kinds
    drives_gpus = request.kind == "gpu" and any(k in GPU_KINDS for k in kinds)
    if request.kind not in kinds and not drives_gpus:
        raise DeviceError(
            f"backend {name!r} does not support device kind {request.kind!r}; it supports "
            f"{', '.join(backend.capabilities.device_kinds)} (available here: {have})"
        )
    raise DeviceError(f"device {request} is not available to backend {name!r}; available: {have}")


def select(
    name: str, device: Device, *, for_compile: bool = False
) -> tuple[str, Backend, DeviceInfo]:
    """Resolve ``backend="auto"`` (then ``$UNIRUN_BACKEND``) and ``device="auto"``; the name
    returned is the backend's own spelling."""
    from_env = ""
    if name.strip().lower() == "auto":
        from_env = os.environ.get("UNIRUN_BACKEND", "").strip()
        name = from_env or "auto"
    if name.lower() != "auto":
        name = _registry.canonical_name(name)
        try:
            backend = _registry.get_backend(name, for_compile=for_compile)
            return name, backend, pick_device(name, backend, device)
        except UnirunError as exc:
            if not from_env:
                raise
            raise type(exc)(
                f"{exc} (the backend name {from_env!r} came from the UNIRUN_BACKEND environment "
                "variable: unset it or name an installed backend)"
            ) from exc
    best: tuple[int, str, Backend, DeviceInfo] | None = None
    seen: list[str] = []
    for entry_name, entry in _registry._all_entries().items():
        try:
            backend = _registry.get_backend(entry_name)
        except UnirunError:
            continue
        for info in _registry._devices(entry, backend):
            seen.append(f"{entry_name}: {info.device}")
            score = backend.capabilities.priority.get(info.device.kind)
            if score is None or not device.matches(info.device):
                continue
            if best is None or score > best[0]:
                best = (score, entry_name, backend, info)
    if best is None:
        if not seen:
            raise BackendNotFoundError(
                "no usable backend is installed; install the default one: "
                f"{_registry.KNOWN_PLUGINS['onnxruntime']} (see `unirun backends`)"
            )
        by_name = [
            name
            for name, entry in _registry._all_entries().items()
            if entry.backend is not None
            and entry.devices is not None
            and any(device.matches(i.device) for i in entry.devices)
        ]
        if by_name:
            raise DeviceError(
                f"{', '.join(by_name)} can run on device {device} but never "
                f"{'is' if len(by_name) == 1 else 'are'} chosen automatically; name it: "
                f"backend={by_name[0]!r}"
            )
        raise DeviceError(
            f"no installed backend can run on device {device}; available: {', '.join(seen)}"
        )
    return best[1], best[2], best[3]


def candidate_names(device: Device) -> Sequence[str]:
    """Available backends that ``backend="auto"`` could pick for ``device``, best first."""
    ranked = []
    for info in _registry.backends():
        if not info.available or info.capabilities is None:
            continue
        scores = [
            info.capabilities.priority[d.device.kind]
            for d in info.devices
            if d.device.kind in info.capabilities.priority and device.matches(d.device)
        ]
        if scores:
            ranked.append((max(scores), info.name))
    return [name for _, name in sorted(ranked, reverse=True)]
