"""unirun devices to OpenVINO device names and back: ``cpu`` ↔ ``CPU``, ``gpu:N`` ↔ ``GPU.N``,
``npu`` ↔ ``NPU``, ``auto`` → ``AUTO``."""

from __future__ import annotations

from typing import Any

from unirun.backend import DeviceInfo
from unirun.device import Device
from unirun.errors import DeviceError

_KINDS = {"CPU": "cpu", "GPU": "gpu", "NPU": "npu"}
# Best first, as the contract asks: a discrete GPU, then an integrated one, the NPU, the CPU.
_RANK = {"gpu": 0, "npu": 1, "cpu": 2}


def from_ov(name: str) -> Device | None:
    """``"GPU.1"`` → ``gpu:1``; ``"GPU"`` (OpenVINO's name when there is one GPU) → ``gpu:0``.
    None for devices unirun has no kind for."""
    base, _, index = name.partition(".")
    kind = _KINDS.get(base)
    if kind is None or (index and not index.isdigit()):
        return None
    if kind == "gpu":
        return Device(kind, int(index or 0))
    return Device(kind, int(index) if index else None)


def available(core: Any) -> dict[Device, str]:
    """The devices OpenVINO reports here, with the name OpenVINO knows each by."""
    found: dict[Device, str] = {}
    for name in core.available_devices:
        device = from_ov(name)
        if device is not None:
            found[device] = name
    return found


def ov_name(core: Any, device: Device) -> str:
    """The OpenVINO name for ``device``; DeviceError naming what exists if it is absent."""
    if device.kind == "auto":
        return "AUTO"
    have = available(core)
    for candidate, name in have.items():
        if candidate.kind == device.kind and candidate.ordinal == device.ordinal:
            return name
    listed = ", ".join(f"{d} ({n})" for d, n in have.items()) or "none"
    raise DeviceError(
        f"OpenVINO has no device {device} here; it reports: {listed}. GPUs need Intel's "
        "compute runtime (OpenCL), NPUs the Intel NPU driver"
    )


def describe(core: Any) -> list[DeviceInfo]:
    infos = []
    for device, name in available(core).items():
        infos.append(DeviceInfo(device, _description(core, name)))
    return sorted(
        infos,
        key=lambda i: (_RANK[i.device.kind], _discrete_first(core, i), i.device.ordinal),
    )


def full_name(core: Any, name: str) -> str:
    try:
        return str(core.get_property(name, "FULL_DEVICE_NAME"))
    except Exception:  # a device that cannot answer still runs
        return name


def _description(core: Any, name: str) -> str:
    try:
        caps = " ".join(core.get_property(name, "OPTIMIZATION_CAPABILITIES"))
    except Exception:
        caps = ""
    return f"{full_name(core, name)} [OpenVINO {name}{': ' + caps if caps else ''}]"


def _discrete_first(core: Any, info: DeviceInfo) -> int:
    if info.device.kind != "gpu":
        return 0
    try:
        kind = str(core.get_property(f"GPU.{info.device.ordinal}", "DEVICE_TYPE"))
    except Exception:
        return 1
    return 0 if "DISCRETE" in kind.upper() else 1
