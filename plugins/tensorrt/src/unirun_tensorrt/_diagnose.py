"""What TensorRT needs on this machine, checked one piece at a time: cuda-bindings, the NVIDIA
driver, a GPU, the TensorRT libraries, and a CUDA major version they all agree on. Each
finding says what is there or what is missing and the command that fixes it."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

from unirun.errors import UnirunError

from . import _cuda


@dataclass(frozen=True)
class Finding:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{'ok' if self.ok else 'missing'}: {self.name}: {self.detail}"
        return f"{text} (fix: {self.fix})" if self.fix else text


def extra_for(driver_cuda: str | None) -> str:
    """The unirun-tensorrt extra for a driver supporting CUDA ``driver_cuda`` (``"12.8"``)."""
    if driver_cuda is None:
        return "cu13"
    return "cu13" if int(driver_cuda.split(".")[0]) >= 13 else "cu12"


def install(extra: str) -> str:
    return f"pip install 'unirun-tensorrt[{extra}]'"


def findings() -> list[Finding]:
    found: list[Finding] = []
    try:
        bindings = metadata.version("cuda-bindings")
        _cuda.runtime()
    except Exception as exc:  # not installed, or a broken install
        found.append(
            Finding(
                "cuda-bindings",
                False,
                f"cannot be imported ({exc})",
                f"{install('cu13')} for NVIDIA drivers 580+, {install('cu12')} for older ones",
            )
        )
        found.append(_tensorrt(None))
        return found
    runtime = _cuda.runtime_version()
    found.append(Finding("cuda-bindings", True, f"{bindings} (CUDA runtime {runtime})"))
    driver = _cuda.driver_version()
    if driver is None:
        found.append(
            Finding(
                "NVIDIA driver",
                False,
                "not found (cudaDriverGetVersion reports none)",
                "install the NVIDIA driver: 580.65+ for CUDA 13, 525.60+ for CUDA 12",
            )
        )
    elif _major(driver) < _major(runtime):
        found.append(
            Finding(
                "NVIDIA driver",
                False,
                f"supports CUDA {driver}, older than the CUDA {runtime} runtime installed",
                f"update the driver, or use the CUDA 12 build: {install('cu12')}",
            )
        )
    else:
        found.append(Finding("NVIDIA driver", True, f"supports CUDA {driver}"))
    found.append(
        _gpus() if driver is not None else Finding("GPU", False, "none visible without a driver")
    )
    found.append(_tensorrt(driver, runtime))
    return found


def _gpus() -> Finding:
    try:
        gpus = _cuda.gpus()
    except UnirunError as exc:
        return Finding("GPU", False, str(exc))
    if not gpus:
        return Finding(
            "GPU", False, "CUDA sees no GPU", "check nvidia-smi and CUDA_VISIBLE_DEVICES"
        )
    return Finding("GPU", True, "; ".join(f"cuda:{g.ordinal} {g.identity}" for g in gpus))


def _tensorrt(driver: str | None, runtime: str | None = None) -> Finding:
    extra = extra_for(driver)
    try:
        from . import _engine

        version = _engine.version()
    except Exception as exc:  # ImportError, or libnvinfer missing
        text = " ".join(str(exc).split())[:300]
        return Finding("TensorRT", False, f"cannot be imported ({text})", install(extra))
    wheels = [d for d in ("tensorrt-cu12", "tensorrt-cu13") if _installed(d)]
    detail = f"{version}" + (f" ({', '.join(wheels)})" if wheels else "")
    built_for = [int(w[-2:]) for w in wheels]
    if driver is not None and built_for and min(built_for) > _major(driver):
        return Finding(
            "TensorRT",
            False,
            f"{detail}, but the driver supports only CUDA {driver}",
            install(extra),
        )
    if runtime is not None and built_for and _major(runtime) not in built_for:
        return Finding(
            "TensorRT",
            False,
            f"{detail}, but cuda-bindings is for CUDA {runtime}; the two must share the CUDA "
            "major version",
            install(f"cu{built_for[0]}"),
        )
    return Finding("TensorRT", True, detail)


def _major(version: str) -> int:
    return int(version.split(".")[0])


def _installed(dist: str) -> bool:
    try:
        metadata.version(dist)
    except metadata.PackageNotFoundError:
        return False
    return True
