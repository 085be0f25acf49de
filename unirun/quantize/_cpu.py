"""Does this CPU have an int8 dot product that does not saturate? (It decides ``reduce_range``.)

x86 CPUs without VNNI multiply uint8 by int8 with ``VPMADDUBSW``, which saturates its int16
sums: 8-bit weights then overflow and the model loses accuracy, 7-bit weights do not. VNNI
(AVX512-VNNI, AVX-VNNI), AMX and the ARM dot-product instructions accumulate in int32.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from collections.abc import Iterable

__all__ = ["CpuInt8", "cpu_int8", "from_flags"]

_X86_DOT = ("avx512_vnni", "avx512vnni", "avx_vnni", "avxvnni", "amx_int8")
_ARM_DOT = ("asimddp", "dotprod", "feat_dotprod")
# Parts of the names of oneDNN ISA levels (so OpenVINO's) that include VNNI or AMX.
_ONEDNN_VNNI = ("vnni", "bf16", "fp16", "amx", "avx10")


class CpuInt8:
    """What is known: ``dot_product`` True/False, or None when it cannot be told here;
    ``evidence`` says where the answer came from (the matching flag, or why unknown)."""

    __slots__ = ("dot_product", "evidence")

    def __init__(self, dot_product: bool | None, evidence: str) -> None:
        self.dot_product = dot_product
        self.evidence = evidence

    def to_json(self) -> dict[str, object]:
        return {"int8_dot_product": self.dot_product, "evidence": self.evidence}


def from_flags(flags: Iterable[str], machine: str) -> CpuInt8:
    """The answer from a CPU's feature flags (``/proc/cpuinfo`` names, lower case)."""
    present = {f.lower() for f in flags}
    arm = machine.lower() in ("aarch64", "arm64") or machine.lower().startswith("arm")
    for flag in _ARM_DOT if arm else _X86_DOT:
        if flag in present:
            return CpuInt8(True, flag)
    return CpuInt8(False, f"no {'/'.join(_ARM_DOT if arm else _X86_DOT)} flag")


def _onednn_cap() -> str | None:
    """oneDNN honours ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA (OpenVINO's CPU plugin too): a cap
    below VNNI makes its int8 kernels the saturating kind whatever the CPU has."""
    for var in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        value = os.environ.get(var)
        if value:
            return value.strip().lower()
    return None


@functools.cache
def cpu_int8() -> CpuInt8:
    """This machine's answer (Linux: /proc/cpuinfo; macOS: sysctl; elsewhere unknown)."""
    machine = platform.machine()
    system = platform.system()
    answer = CpuInt8(None, f"cannot read CPU flags on {system or 'this system'}")
    if system == "Linux":
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as fh:
                for line in fh:
                    key, _, value = line.partition(":")
                    if key.strip() in ("flags", "Features"):
                        answer = from_flags(value.split(), machine)
                        break
        except OSError:
            pass
    elif system == "Darwin":
        answer = _darwin(machine)
    cap = _onednn_cap()
    if answer.dot_product and cap and cap != "all" and not any(k in cap for k in _ONEDNN_VNNI):
        answer = CpuInt8(False, f"{answer.evidence}, but oneDNN is capped at {cap.upper()}")
    return answer


def _darwin(machine: str) -> CpuInt8:
    if machine == "arm64":  # every Apple silicon core has the ARMv8.2 dot product
        return CpuInt8(True, "Apple silicon")
    try:
        out = subprocess.run(
            ["sysctl", "-n", "machdep.cpu.leaf7_features"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return CpuInt8(None, "sysctl failed")
    flags = [f.replace(".", "_") for f in out.split()]
    return from_flags([f.lower() for f in flags], machine)
