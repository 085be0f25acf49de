"""ONNX Runtime's devices and what ``unirun doctor`` says about them."""

from __future__ import annotations

import platform
from typing import Any

from unirun.backend import DeviceInfo, Finding
from unirun.device import Device

__all__ = ["CUDA", "cpu_name", "cuda_devices", "diagnose"]

CUDA = "CUDAExecutionProvider"


def diagnose(ort: Any, device: Device | None) -> list[Finding]:
    providers = ort.get_available_providers()
    found = [Finding("onnxruntime", None, f"{ort.__version__}: {', '.join(providers)}")]
    if device is not None and device.kind in ("cuda", "gpu"):
        found.append(
            Finding(
                "CUDA execution provider",
                CUDA in providers,
                "present" if CUDA in providers else "this onnxruntime build has no CUDA",
                ""
                if CUDA in providers
                else "pip uninstall onnxruntime && pip install "
                "onnxruntime-gpu; check the NVIDIA driver (nvidia-smi)",
            )
        )
        found.append(_nvidia_driver())
    return found


def _nvidia_driver() -> Finding:
    """The NVIDIA driver, as ``nvidia-smi`` reports it."""
    import shutil
    import subprocess

    smi = shutil.which("nvidia-smi")
    if smi is None:
        return Finding("NVIDIA driver", False, "no nvidia-smi on PATH", "install the NVIDIA driver")
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return Finding("NVIDIA driver", False, f"nvidia-smi failed: {exc}")
    gpus = "; ".join(line.strip() for line in out.splitlines() if line.strip())
    return Finding("NVIDIA driver", bool(gpus), gpus or "nvidia-smi lists no GPU")


def cuda_devices(ort: Any) -> list[DeviceInfo]:
    """CUDA devices, from ONNX Runtime's device discovery where it reports them (1.22+)."""
    devices: list[DeviceInfo] = []
    try:
        for ep_device in ort.get_ep_devices():
            if ep_device.ep_name == CUDA:
                hw = ep_device.device
                index = len(devices)
                name = hw.metadata.get("Description", f"{hw.vendor} GPU") if hw.metadata else "GPU"
                devices.append(DeviceInfo(Device("cuda", index), name, f"{name} {hw.device_id:#x}"))
    except Exception:
        pass
    return devices or [DeviceInfo(Device("cuda", 0), "CUDA device 0", "cuda")]


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
