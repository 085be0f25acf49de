"""A cache hit costs a few ``stat`` calls, not a read of every payload: payload files that have
not changed since they last passed verification are not hashed again — and any change, even
with the modification time put back, makes unirun read (and refuse) the file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

import unirun
from unirun import _fs
from unirun.testing import conv_net, rewrite_external_ones, save_external, scaled_by_weights


@pytest.fixture
def digests(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many payload bytes were hashed (unirun's own digest function, counted)."""
    read: list[int] = []
    real = _fs.digest

    def counting(fd: int, size: int, *rest: Any) -> Any:
        read.append(size)
        return real(fd, size, *rest)

    monkeypatch.setattr(_fs, "digest", counting)
    return read


@pytest.fixture
def cnn(tmp_path: Path) -> Path:
    path = tmp_path / "cnn.onnx"
    onnx.save(conv_net(size=8), str(path))
    return path


X = np.ones((1, 3, 8, 8), np.float32)


def test_an_unchanged_cache_hit_reads_no_payload(
    cnn: Path, cache_dir: Path, digests: list[int]
) -> None:
    with unirun.load(cnn, backend="reference") as m:
        want = m(X)["logits"]
        assert m.cache_status == "miss"
    del digests[:]
    with unirun.load(cnn, backend="reference") as m:  # first hit: verified in full, stamped
        assert m.cache_status == "hit"
    assert sum(digests) > 0
    del digests[:]
    with unirun.load(cnn, backend="reference") as m:  # unchanged: no payload read again
        assert m.cache_status == "hit"
        np.testing.assert_array_equal(m(X)["logits"], want)
    assert digests == []


def test_a_changed_payload_is_read_again_even_with_its_times_put_back(
    cnn: Path, cache_dir: Path, digests: list[int]
) -> None:
    unirun.load(cnn, backend="reference").close()
    with unirun.load(cnn, backend="reference") as m:
        payload = m.artifact.directory / m.artifact.manifest.files[0].path
    st = payload.stat()
    data = bytearray(payload.read_bytes())
    data[-1] ^= 0xFF  # same size, other bytes
    payload.write_bytes(bytes(data))
    os.utime(payload, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime restored; ctime cannot be
    del digests[:]
    with unirun.load(cnn, backend="reference") as m:
        assert m.cache_status == "rebuilt"  # read again, found damaged, rebuilt
    assert sum(digests) > 0


def test_saved_artifacts_are_stamped_too_but_not_without_a_cache(
    cnn: Path, cache_dir: Path, tmp_path: Path, digests: list[int]
) -> None:
    saved = unirun.compile(cnn, backend="reference").save(tmp_path / "a.unirun")
    unirun.load(saved).close()
    del digests[:]
    unirun.load(saved).close()
    assert digests == []
    unirun.load(saved, cache=False).close()  # no cache: nothing remembered, all verified
    assert sum(digests) > 0


@pytest.fixture(params=["initializer", "if_branch"])
def scaled(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Path]:
    """``y = x * w`` (:func:`unirun.testing.scaled_by_weights`, ``w`` all ones) with ``w`` in
    the external file ``w.bin``: as an initializer, or inside an ``If`` branch."""
    path = save_external(scaled_by_weights(request.param, size=256), tmp_path / "scaled.onnx")
    return path, tmp_path / "w.bin"


def test_unchanged_external_weights_of_the_source_are_hashed_once(
    scaled: tuple[Path, Path], cache_dir: Path, digests: list[int]
) -> None:
    """The source's sha256 (the cache key) covers its external weights: read and hashed on the
    first load, taken from the verified stamp on later loads while the file is unchanged."""
    path, weights = scaled
    size = weights.stat().st_size
    x = np.ones(256, np.float32)
    with unirun.load(path, backend="reference") as m:
        assert m(x)["y"].tolist() == [1.0] * 256
    assert size in digests
    del digests[:]
    for _ in range(2):
        with unirun.load(path, backend="reference") as m:
            assert m.cache_status == "hit"
            assert m(x)["y"].tolist() == [1.0] * 256
    assert size not in digests


def test_changed_external_weights_are_hashed_again_even_with_times_put_back(
    scaled: tuple[Path, Path], cache_dir: Path, digests: list[int]
) -> None:
    path, weights = scaled
    x = np.ones(256, np.float32)
    unirun.load(path, backend="reference").close()
    st = weights.stat()
    rewrite_external_ones(path, 3.0)  # same size, other values
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    del digests[:]
    with unirun.load(path, backend="reference") as m:
        assert m.cache_status == "miss"  # another source hash: another cache entry
        assert m(x)["y"].tolist() == [3.0] * 256
    assert st.st_size in digests


def test_without_a_cache_external_weights_are_hashed_on_every_load(
    scaled: tuple[Path, Path], cache_dir: Path, digests: list[int]
) -> None:
    path, weights = scaled
    for _ in range(2):
        unirun.load(path, backend="reference", cache=False).close()
    assert digests.count(weights.stat().st_size) == 2
