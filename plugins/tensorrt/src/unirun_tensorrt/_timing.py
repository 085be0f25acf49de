"""TensorRT's timing cache (measured kernel timings) kept between builds, in the engine cache.

One file per TensorRT version and GPU, shared by every build on that pair. Writers hold a file
lock, merge what another process wrote meanwhile, and replace the file atomically (temporary
file + rename), so a reader never sees half a cache and no builder's timings are lost.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class TimingCacheFile:
    def __init__(self, directory: Path, tensorrt_version: str, gpu_identity: str) -> None:
        key = _UNSAFE.sub("_", f"trt{tensorrt_version}-{gpu_identity}").strip("_")
        self.path = directory / "timing" / f"{key}.cache"

    def read(self) -> bytes:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return b""

    def update(self, merge: Callable[[bytes], bytes]) -> None:
        """Replace the file with ``merge(current contents)``, under the lock."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock", timeout=600):
            data = merge(self.read())
            fd, tmp = tempfile.mkstemp(prefix=".timing-", dir=self.path.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
