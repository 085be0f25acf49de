from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import onnx
import pytest

from unirun.testing import conv_net, embedding_model, multi_io


@pytest.fixture
def cnn_path(tmp_path: Path) -> Path:
    path = tmp_path / "cnn.onnx"
    onnx.save(conv_net(size=8), str(path))
    return path


@pytest.fixture
def embedding_path(tmp_path: Path) -> Path:
    path = tmp_path / "embedding.onnx"
    onnx.save(embedding_model(), str(path))
    return path


@pytest.fixture
def multi_path(tmp_path: Path) -> Path:
    path = tmp_path / "multi.onnx"
    onnx.save(multi_io(), str(path))
    return path


@pytest.fixture
def python_run() -> Any:
    """Run Python code in a fresh process (the same interpreter and cache directory) and
    return the finished process; a hang fails the test instead of hanging the suite.
    ``unprivileged=True`` drops the root's permission bypass (CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH), so permission bits apply as for any user; the test skips, saying
    why, where that cannot be done."""

    def run(
        code: str, *, timeout: float = 60, unprivileged: bool = False
    ) -> subprocess.CompletedProcess[str]:
        preexec = _drop_dac_capabilities if unprivileged and os.geteuid() == 0 else None
        if preexec is not None:
            try:
                subprocess.run([sys.executable, "-c", ""], preexec_fn=preexec, check=True)
            except (subprocess.SubprocessError, OSError):
                pytest.skip(
                    "running as root and cannot drop CAP_DAC_OVERRIDE: permission bits do not "
                    "apply to this process"
                )
        try:
            return subprocess.run(
                [sys.executable, "-c", textwrap.dedent(code)],
                capture_output=True,
                text=True,
                timeout=timeout,
                preexec_fn=preexec,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"still running after {timeout} s (hung):\n{code}\n{exc.stderr or ''}")

    return run


def _drop_dac_capabilities() -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, from the bounding set
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")
