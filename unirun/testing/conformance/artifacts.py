"""Artifacts and the compile cache: a saved artifact loads after being moved, a tampered one is
refused, and the cache hits, misses when what the build depends on changes, and rebuilds a
damaged entry."""

from __future__ import annotations

import gc
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

import unirun
from unirun.artifact import manifest_digest
from unirun.errors import ArtifactError

from .. import models
from .._support import feeds_for
from ._stand_in import versioned
from .base import SIZES, ConformanceBase, Engine, Params

__all__ = ["TAMPERING", "ArtifactTests"]

#: What ``test_tampered_artifact`` does to a saved artifact.
TAMPERING = ("payload_bytes", "payload_missing", "manifest_garbage", "runtime_version")


class ArtifactTests(ConformanceBase):
    """Do compiled artifacts survive a move, refuse tampering, and key the cache correctly?"""

    _params: ClassVar[Mapping[str, Params]] = {"tampering": TAMPERING}

    def test_artifact_round_trip(self, engine: Engine, tmp_path: Path) -> None:
        """A saved artifact loads from another folder, after the build is gone, with the same
        results.

        Troubleshooting: keep no absolute paths in the manifest's ``extra`` or in the payload
        (write engine caches under ``target.cache_dir``, not next to the model), and put
        everything ``load`` needs into the artifact.
        """
        model = models.conv_net(size=8)
        feeds = feeds_for(model, SIZES)
        shapes = self.shapes_for(engine, model, SIZES)
        artifact = unirun.compile(
            model, backend=engine.name, device=engine.device, shapes=shapes, cache=False
        )
        first = tmp_path / "first.unirun"
        artifact.save(first)
        del artifact
        gc.collect()  # the unsaved build directory goes away with its artifact
        moved = shutil.move(str(first), str(tmp_path / "elsewhere" / "model.unirun"))
        with unirun.load(moved) as m:
            assert (m.backend, m.cache_status) == (engine.name, "artifact")
            assert m.device.kind == engine.device.kind
            manifest = m.artifact.manifest
            assert manifest.plugin_version and manifest.source_sha256
            self.assert_close(m(feeds), self.golden(model, feeds))

    def test_tampered_artifact(self, engine: Engine, tampering: str, tmp_path: Path) -> None:
        """A saved artifact whose payload or manifest was altered is refused with ArtifactError.

        Troubleshooting: write every payload file into ``request.directory`` before
        ``compile`` returns (files written later are not checksummed), and read them back in
        ``load`` only through ``request.file(name)``. When the engine only loads what its own
        version built, set ``Capabilities.pins_runtime_version``.
        """
        if tampering == "runtime_version" and not engine.capabilities.pins_runtime_version:
            pytest.skip(f"backend {engine.name!r} does not pin the engine version of artifacts")
        model = models.mlp()
        saved = unirun.compile(model, backend=engine.name, device=engine.device, cache=False).save(
            tmp_path / "model.unirun"
        )
        manifest = json.loads((saved / "manifest.json").read_text(encoding="utf-8"))
        payload = saved / manifest["files"][0]["path"]
        if tampering == "payload_bytes":
            data = bytearray(payload.read_bytes())
            data[len(data) // 2] ^= 0xFF
            payload.write_bytes(bytes(data))
        elif tampering == "payload_missing":
            payload.unlink()
        elif tampering == "manifest_garbage":
            (saved / "manifest.json").write_text("{ not json", encoding="utf-8")
        else:
            manifest["runtime_version"] = "0.0.0-some-other-build"
            manifest["sha256"] = manifest_digest(manifest)  # consistent, so the version counts
            (saved / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        with pytest.raises(ArtifactError):
            unirun.load(saved)

    def test_cache_invalidation(self, engine: Engine) -> None:
        """The compile cache hits for the same build and misses when options, the plugin's
        version or the engine's version change; a damaged entry is rebuilt.

        Troubleshooting: everything that changes the payload must reach the build key: put
        plugin options in ``options_model`` (not environment variables), report the engine's
        version in ``probe()``, and bump the plugin's version when its output changes.
        """
        model = models.mlp()

        def status(**kwargs: Any) -> str:
            with self.load(engine, model, **kwargs) as m:
                return m.cache_status

        with self.load(engine, model) as m:
            assert m.cache_status == "miss"
            built_by = m.artifact.manifest.plugin_version
        assert status() == "hit"
        assert status(threads=1) == "miss"
        assert status(optimization_level=1) == "miss"
        # The same backend reporting other versions, registered as an application would.
        with versioned(engine.name, self.plugin_path, plugin="999.0.0"):
            assert status() == "miss", "a new plugin version must not reuse old builds"
            assert status() == "hit"
        with versioned(engine.name, self.plugin_path, plugin=built_by, engine="999.0.0-engine"):
            assert status() == "miss", "a new engine version must not reuse old builds"
        with self.load(engine, model) as m:
            entry = m.artifact.directory
        victim = next(p for p in sorted(entry.rglob("*")) if p.is_file() and p.suffix != ".json")
        victim.write_bytes(victim.read_bytes() + b"\0damage")
        assert status() == "rebuilt"
