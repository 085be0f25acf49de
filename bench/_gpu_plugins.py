"""A pytest plugin for ``bench.gpu_check``: makes the bundled GPU backends usable where their
packages are on ``PYTHONPATH`` but not installed (no entry points), by registering them
in-process. An installed plugin always wins (registration never shadows one)."""

from __future__ import annotations

import contextlib
from typing import Any

_BACKENDS = {
    "onnxruntime": "unirun_onnxruntime:OnnxRuntimeBackend",
    "tensorrt": "unirun_tensorrt:TensorRTBackend",
}


def pytest_configure(config: Any) -> None:
    import unirun
    from unirun.errors import UnirunError

    for name, path in _BACKENDS.items():
        with contextlib.suppress(UnirunError):  # already installed: keep the installed one
            unirun.register_backend(path, name=name)
