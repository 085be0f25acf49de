"""One device vocabulary for every engine; each plugin maps it to its own names."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .errors import DeviceError

__all__ = ["DEVICE_KINDS", "Device", "register_device_kind"]

#: What each kind means. ``gpu`` is "the GPU this engine drives" (CUDA for ONNX Runtime, an
#: Intel GPU for OpenVINO, the Apple GPU for Core ML); ``cuda`` always means an NVIDIA GPU.
#: Plugins add kinds of their own (``Capabilities.new_device_kinds``) when they are discovered.
DEVICE_KINDS: dict[str, str] = {
    "cpu": "the host CPU",
    "cuda": "an NVIDIA GPU through CUDA",
    "gpu": "the GPU the engine drives",
    "npu": "a neural processing unit",
    "ane": "the Apple Neural Engine",
    "auto": "let unirun (or the engine) choose",
}
#: Kinds that are a GPU: a request for ``gpu`` is satisfied by a device of any of them.
GPU_KINDS: set[str] = {"gpu", "cuda"}
#: Called once when a string names a kind nobody registered yet: discovers the installed
#: plugins, which register theirs (set by the registry; avoids an import cycle).
_discover: Callable[[], None] | None = None


def register_device_kind(kind: str, description: str, *, gpu: bool = False) -> None:
    """Add a device kind to the vocabulary (plugins declare theirs in
    ``Capabilities.new_device_kinds``; the registry calls this when it loads them)."""
    if not _NAME.match(kind):
        raise DeviceError(f"a device kind is a lowercase word such as 'rocm', not {kind!r}")
    DEVICE_KINDS.setdefault(kind, description)
    if gpu:
        GPU_KINDS.add(kind)


_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

_PATTERN = re.compile(r"^\s*([a-z][a-z0-9_]*)\s*(?::\s*(\d+)\s*)?$")


@dataclass(frozen=True, slots=True)
class Device:
    """A device kind with an optional index: ``Device("cuda", 1)`` prints as ``cuda:1``.

    There is one host CPU: ``cpu:0`` is accepted and means ``cpu``."""

    kind: str
    index: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in DEVICE_KINDS and _discover is not None:
            _discover()
        if self.kind not in DEVICE_KINDS:
            raise DeviceError(
                f"unknown device kind {self.kind!r}; expected one of {', '.join(DEVICE_KINDS)}"
            )
        if self.kind == "cpu" and self.index == 0:
            object.__setattr__(self, "index", None)
        if self.index is not None and (self.index < 0 or self.kind in ("cpu", "auto")):
            also = "; there is one host CPU: write 'cpu'" if self.kind == "cpu" else ""
            raise DeviceError(f"device {self.kind!r} does not take index {self.index}{also}")

    @classmethod
    def parse(cls, value: Device | str) -> Device:
        """Parse ``"cpu"``, ``"cuda:1"``, ``"GPU.0"`` (OpenVINO's spelling), ``"auto"``…"""
        if isinstance(value, Device):
            return value
        if not isinstance(value, str):
            raise DeviceError(f"a device is a string such as 'cpu' or 'cuda:0', not {value!r}")
        match = _PATTERN.match(value.lower().replace(".", ":"))
        if match is None:
            raise DeviceError(
                f"cannot parse device {value!r}; write kind[:index] with kind one of "
                f"{', '.join(DEVICE_KINDS)}, e.g. 'cpu', 'cuda:1', 'gpu:0'"
            )
        index = match.group(2)
        return cls(match.group(1), None if index is None else int(index))

    @property
    def ordinal(self) -> int:
        """The index, with an unindexed device meaning the first one."""
        return self.index or 0

    def __str__(self) -> str:
        return self.kind if self.index is None else f"{self.kind}:{self.index}"

    def __repr__(self) -> str:
        return f"Device({str(self)!r})"

    def matches(self, other: Device) -> bool:
        """True if ``other`` satisfies a request for ``self`` (``cuda`` accepts ``cuda:0``)."""
        if self.kind == "auto":
            return True
        same = self.kind == other.kind or (self.kind == "gpu" and other.kind in GPU_KINDS)
        return same and (self.index is None or self.ordinal == other.ordinal)
