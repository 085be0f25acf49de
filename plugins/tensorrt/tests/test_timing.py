"""The timing cache file: per TensorRT version and GPU, replaced atomically, merged under a
lock so concurrent builders lose nothing."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from unirun_tensorrt._timing import TimingCacheFile


def test_one_file_per_tensorrt_version_and_gpu(tmp_path: Path) -> None:
    a = TimingCacheFile(tmp_path, "10.13.3.9", "NVIDIA H100 (compute capability 9.0)")
    b = TimingCacheFile(tmp_path, "11.4.0.106", "NVIDIA H100 (compute capability 9.0)")
    c = TimingCacheFile(tmp_path, "10.13.3.9", "NVIDIA L4 (compute capability 8.9)")
    assert len({a.path, b.path, c.path}) == 3
    assert a.path.parent == tmp_path / "timing"
    assert " " not in a.path.name and "(" not in a.path.name
    assert a.read() == b""


def test_updates_merge_what_is_there(tmp_path: Path) -> None:
    cache = TimingCacheFile(tmp_path, "10", "gpu")
    cache.update(lambda current: current + b"a")
    cache.update(lambda current: current + b"b")
    assert cache.read() == b"ab"
    assert [p.name for p in cache.path.parent.iterdir() if not p.name.endswith(".lock")] == [
        cache.path.name
    ]


def test_concurrent_builders_lose_nothing(tmp_path: Path) -> None:
    cache = TimingCacheFile(tmp_path, "10", "gpu")
    threads = [
        threading.Thread(target=cache.update, args=(lambda cur, i=i: cur + bytes([65 + i]),))
        for i in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(cache.read()) == list(range(65, 73))


def test_a_failed_merge_leaves_the_old_file(tmp_path: Path) -> None:
    cache = TimingCacheFile(tmp_path, "10", "gpu")
    cache.update(lambda _: b"good")

    def broken(current: bytes) -> bytes:
        raise RuntimeError("serialize failed")

    with pytest.raises(RuntimeError):
        cache.update(broken)
    assert cache.read() == b"good"
