"""Whether a serialized plan can load here: the facts it depends on, recorded at build time
and compared at load time. A plan deserialized under another TensorRT or on another GPU is a
classic crash, so a mismatch is refused with ``ArtifactError`` naming the field."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from unirun.errors import ArtifactError

FIELD = "plan"  #: the manifest ``extra`` key holding a :class:`PlanInfo`


@dataclass(frozen=True)
class PlanInfo:
    """What a plan was built with, or what this machine offers."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str  #: ``"8.9"``
    cuda_version: str  #: the CUDA runtime, ``"13.0"``
    #: The builder's hardware compatibility level: ``""`` (this GPU model only),
    #: ``"same_compute_capability"`` or ``"ampere_plus"``.
    hardware_compatibility: str = ""

    def to_json(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> PlanInfo:
        names = [f.name for f in fields(cls)]
        if not isinstance(data, Mapping) or any(
            not isinstance(data.get(n, ""), str) for n in names
        ):
            raise ArtifactError(
                f"the artifact's manifest lacks the TensorRT plan facts (extra.{FIELD}); "
                "recompile it with this plugin",
                field=f"extra.{FIELD}",
            )
        missing = [n for n in names[:4] if not data.get(n)]
        if missing:
            raise ArtifactError(
                f"the artifact's manifest lacks extra.{FIELD}.{missing[0]}; recompile it",
                field=f"extra.{FIELD}.{missing[0]}",
            )
        return cls(**{n: str(data.get(n, "")) for n in names})


def check(built: PlanInfo, here: PlanInfo) -> None:
    """Raise ``ArtifactError`` naming the first field that keeps the plan from loading here."""
    if built.tensorrt_version != here.tensorrt_version:
        _refuse(
            "tensorrt_version",
            f"TensorRT {built.tensorrt_version}, but TensorRT {here.tensorrt_version} is "
            "installed (plans load only under the TensorRT version that built them)",
        )
    if _major(built.cuda_version) != _major(here.cuda_version):
        _refuse(
            "cuda_version",
            f"CUDA {built.cuda_version}, but this process runs CUDA {here.cuda_version}; "
            "install the unirun-tensorrt extra of the plan's CUDA major version",
        )
    level = built.hardware_compatibility
    if level == "ampere_plus":
        if _capability(here.compute_capability) < (8, 0):
            _refuse(
                "compute_capability",
                f"GPUs of compute capability 8.0 or newer (hardware_compatibility="
                f"'ampere_plus'), but {here.gpu_name} has {here.compute_capability}",
            )
        return
    if built.compute_capability != here.compute_capability:
        _refuse(
            "compute_capability",
            f"compute capability {built.compute_capability} ({built.gpu_name}), but "
            f"{here.gpu_name} here has {here.compute_capability}",
        )
    if level != "same_compute_capability" and built.gpu_name != here.gpu_name:
        _refuse(
            "gpu_name",
            f"{built.gpu_name}, but this GPU is {here.gpu_name} (compile with "
            "hardware_compatibility='same_compute_capability' for plans that move between GPUs "
            "of one compute capability)",
        )


def _refuse(name: str, why: str) -> None:
    raise ArtifactError(
        f"this TensorRT plan was built for {why}; recompile the ONNX model here "
        f"(field extra.{FIELD}.{name})",
        field=f"extra.{FIELD}.{name}",
    )


def _major(version: str) -> str:
    return version.split(".", 1)[0]


def _capability(value: str) -> tuple[int, int]:
    major, _, minor = value.partition(".")
    try:
        return int(major), int(minor or 0)
    except ValueError:
        return (0, 0)
