"""The int8 build: calibrate once, write the backend's forms, measure each, keep the best."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import _registry
from ..artifact import MANIFEST_NAME, Artifact
from ..backend import Int8Form
from ..errors import CompileError, InputError, OptionsError, UnirunError
from ..source import OnnxModel
from ._calibration import Calibration, Feeds, digest
from ._cpu import CpuInt8, cpu_int8
from ._emit import Ranges, applies, calibrate, emit, require_tools, tool_version
from ._metrics import BOUND_COSINE, BOUND_RELATIVE, compare_outputs
from ._record import KEY, SLOWER, Candidate, Int8Record, Speed

if TYPE_CHECKING:
    from .._build import Build as _Build
    from ..model import Model

__all__ = ["Int8Plan", "plan"]

log = logging.getLogger("unirun.quantize")

_STATIC = (Int8Form.STATIC, Int8Form.STATIC_SYMMETRIC)
_CPU_KINDS = ("cpu", "auto")  # AUTO may run on the CPU: plan for its int8 kernels


def plan(build: _Build, calibration: Any) -> Int8Plan | None:
    """The int8 plan for a build, or None when it is not an int8 build. Raises OptionsError for
    a request that cannot work and InputError for calibration data that cannot be read."""
    if build.options.precision != "int8":
        if calibration is not None:
            raise OptionsError(
                "calibration= is only used with precision='int8' (it was "
                f"{build.options.precision!r})"
            )
        return None
    kind = build.device.device.kind
    declared = build.backend.capabilities.int8_forms
    forms = tuple(declared.get(kind, ()))
    if not forms:
        have = ", ".join(sorted(declared)) or "none"
        raise OptionsError(
            f"backend {build.name!r} has no int8 form for device {build.device.device} (its "
            f"int8 device kinds: {have})"
        )
    if calibration is None:
        raise OptionsError(
            "precision='int8' needs calibration= data: an iterable of feeds like the model's "
            "real inputs, or a directory of .npy/.npz files (100–300 samples)"
        )
    if any(f is not Int8Form.WEIGHTS for f in forms):
        require_tools()
    data = Calibration.of(calibration)
    feeds = data.bind(build.model.inputs)
    usable = tuple(f for f in forms if applies(f, build.model.proto))
    if not usable:
        raise OptionsError(
            f"backend {build.name!r} quantizes {', '.join(f.value for f in forms)} on "
            f"{kind}, which finds nothing to quantize in this model"
        )
    cpu = cpu_int8()
    if data.reduce_range is not None:
        reduce_range = data.reduce_range
    else:
        reduce_range = kind in _CPU_KINDS and cpu.dot_product is not True
    return Int8Plan(data, feeds, digest(feeds), usable, reduce_range, cpu)


@dataclass
class Int8Plan:
    calibration: Calibration
    feeds: list[Feeds]
    digest: str
    forms: tuple[Int8Form, ...]
    reduce_range: bool
    cpu: CpuInt8

    def key(self) -> dict[str, Any]:
        """What joins the compile-cache key: the data, how it is split, what is built."""
        return {
            "calibration_sha256": self.digest,
            "held_back": self.calibration.held_back,
            "forms": [f.value for f in self.forms],
            "reduce_range": self.reduce_range,
            "tool": tool_version(),
            "bound": [BOUND_COSINE, BOUND_RELATIVE, SLOWER],
        }

    def build(
        self,
        host: _Build,
        staging: Path,
        engine_dir: Path | None,
        cache: bool | str | os.PathLike[str],
    ) -> Artifact:
        runnable = _registry.describe(host.name)[0].available
        with ExitStack() as stack:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="unirun-int8-")))
            reference, fp32_bytes = _reference(host, runnable, cache)
            stack.callback(reference.close)
            feeds = self._checked(reference)
            fit, held = self.calibration.split(feeds)
            want = [reference.infer(f) for f in held] if runnable else []
            ranges_dir = _ranges_dir(cache, scratch, host.model.sha256, self.digest, len(fit))
            ranges: Ranges | None = None
            measured: list[tuple[Candidate, Artifact]] = []
            tried: list[Candidate] = []
            chosen: tuple[Candidate, Artifact] | None = None
            for form in self.forms:
                try:
                    if form in _STATIC and ranges is None:
                        ranges = calibrate(_tool_source(host.model), fit, ranges_dir)
                    artifact, params = self._compile(host, form, ranges, scratch, engine_dir)
                except UnirunError as exc:
                    log.info("int8 form %s failed: %s", form.value, exc)
                    tried.append(Candidate(form=form.value, error=str(exc)))
                    continue
                size = sum(f.size for f in artifact.manifest.files)
                if not runnable:
                    candidate = Candidate(form=form.value, parameters=params, payload_bytes=size)
                    tried.append(candidate)
                    chosen = (candidate, artifact)
                    break
                candidate = _measure(host, form, params, size, artifact, reference, held, want)
                tried.append(candidate)
                if candidate.error is not None:
                    continue
                measured.append((candidate, artifact))
                log.info(
                    "int8 form %s: %s",
                    form.value,
                    "; ".join(candidate.problems()) or "within the bound and not slower",
                )
                if not candidate.problems():
                    chosen = (candidate, artifact)
                    break
            if chosen is None:
                if not measured:
                    raise CompileError(
                        f"no int8 form of this model could be built for {host.name!r}: "
                        + "; ".join(f"{c.form}: {c.error}" for c in tried)
                    )
                chosen = min(measured, key=lambda pair: _rank(pair[0]))
            candidate, artifact = chosen
            record = Int8Record(
                **candidate.model_dump(),
                tool=tool_version(),
                cpu=self.cpu.to_json(),
                calibration_sha256=self.digest,
                calibration_samples=len(fit),
                held_back_samples=len(held),
                ranges_sha256=ranges.sha256 if ranges is not None else None,
                verified=runnable,
                fp32_payload_bytes=fp32_bytes,
                tried=tried,
            )
            return _seal(artifact, staging, record)

    def _checked(self, reference: Model) -> list[Feeds]:
        """Every sample checked against the model's inputs, as ``Model.infer`` checks feeds."""
        checked = []
        for index, feed in enumerate(self.feeds):
            try:
                checked.append(reference._feeds.check(feed))
            except InputError as exc:
                raise self.calibration.error(index, exc) from None
        return checked

    def _compile(
        self,
        host: _Build,
        form: Int8Form,
        ranges: Ranges | None,
        scratch: Path,
        engine_dir: Path | None,
    ) -> tuple[Artifact, dict[str, Any]]:
        onnx_file = scratch / f"{form.value}.onnx"
        params = emit(
            form,
            host.model.proto,
            ranges=ranges,
            reduce_range=self.reduce_range,
            source=_tool_source(host.model),
            out=onnx_file,
        )
        quantized = OnnxModel.from_source(onnx_file.read_bytes())
        directory = scratch / form.value
        directory.mkdir()
        return host._compile(directory, engine_dir, False, quantized), params


def _tool_source(model: OnnxModel) -> Any:
    """What the quantization tools read: the path when weights live in external files (the
    files the core checked), else the proto."""
    source = model.for_engine()
    return str(source) if isinstance(source, Path) else source


def _reference(
    host: _Build, runnable: bool, cache: bool | str | os.PathLike[str]
) -> tuple[Model, int | None]:
    """The fp32 model the int8 forms are measured against: the same backend, device and
    options (through the cache, so a later fp32 load is a hit); the ``reference`` backend,
    only to check the calibration data, where the backend cannot run here."""
    from .._build import Build, BuildArgs
    from .._match import open_model

    shapes = host.options.shapes
    if not runnable:
        ref = Build(host.model, BuildArgs("reference", "cpu", shapes=shapes))
        artifact, status = ref.run(False)
        return open_model("reference", ref.backend, ref.device, artifact, status, False), None
    fp32 = Build(
        host.model,
        BuildArgs(
            host.name,
            host.device.device,
            "fp32",
            shapes,
            host.plugin_options,
            host.options.threads,
            host.options.optimization_level,
        ),
    )
    artifact, status = fp32.run(cache)
    model = open_model(host.name, host.backend, host.device, artifact, status, cache)
    return model, sum(f.size for f in artifact.manifest.files)


def _ranges_dir(
    cache: bool | str | os.PathLike[str], scratch: Path, model: str, data: str, fit: int
) -> Path:
    """One range cache per (model, calibration data, split, tool), shared by every backend."""
    key = hashlib.sha256(
        json.dumps([model, data, fit, tool_version(), "minmax"]).encode()
    ).hexdigest()
    if cache is False:
        return scratch / "ranges"
    from ..cache import default_cache_dir

    root = default_cache_dir() if cache is True else Path(cache)
    return root / "calibration" / key[:40]


def _measure(
    host: _Build,
    form: Int8Form,
    params: dict[str, Any],
    size: int,
    artifact: Artifact,
    reference: Model,
    held: Sequence[Feeds],
    want: Sequence[Mapping[str, Any]],
) -> Candidate:
    from .._match import open_model

    try:
        with open_model(host.name, host.backend, host.device, artifact, "off", False) as model:
            got = [model.infer(f) for f in held]
            speed = _speed(reference, model, held[0])
    except UnirunError as exc:
        log.info("int8 form %s does not run: %s", form.value, exc)
        return Candidate(form=form.value, parameters=params, payload_bytes=size, error=str(exc))
    return Candidate(
        form=form.value,
        parameters=params,
        accuracy=compare_outputs(got, want),
        speed=speed,
        payload_bytes=size,
    )


def _speed(fp32: Model, int8: Model, feed: Feeds, budget: float = 1.0) -> Speed:
    """Median per-call time of each, in interleaved rounds (so drift hits both alike)."""
    for model in (fp32, int8, fp32, int8):
        model.infer(feed)
    start = time.perf_counter()
    fp32.infer(feed)
    calls = max(1, int(0.01 / max(time.perf_counter() - start, 1e-6)))
    samples: dict[int, list[float]] = {0: [], 1: []}
    pair = (fp32, int8)
    deadline = time.perf_counter() + budget
    rounds = 0
    while rounds < 7 or (time.perf_counter() < deadline and rounds < 50):
        for index in (rounds % 2, 1 - rounds % 2):
            model = pair[index]
            start = time.perf_counter()
            for _ in range(calls):
                model.infer(feed)
            samples[index].append((time.perf_counter() - start) / calls)
        rounds += 1
    return Speed(
        fp32_ms=statistics.median(samples[0]) * 1e3, int8_ms=statistics.median(samples[1]) * 1e3
    )


def _rank(candidate: Candidate) -> tuple[int, float]:
    """Order when no form met everything: accurate ones first, fastest first; then the
    least wrong (highest worst cosine)."""
    if candidate.accurate:
        return (0, candidate.speed.ratio if candidate.speed else 1.0)
    cosines = [s.get("cosine") for s in candidate.accuracy.values() if "cosine" in s]
    worst = min((c if c is not None else -1.0 for c in cosines), default=-1.0)
    return (1, -worst)


def _seal(artifact: Artifact, staging: Path, record: Int8Record) -> Artifact:
    """Move the chosen build into ``staging`` with the record in its manifest."""
    from .._manifest import dump_manifest

    for entry in artifact.directory.iterdir():
        if entry.name != MANIFEST_NAME:
            shutil.move(str(entry), str(staging / entry.name))
    extra = {**artifact.manifest.extra, KEY: record.model_dump(mode="json")}
    update: dict[str, Any] = {"extra": extra}
    if record.form == Int8Form.WEIGHTS.value and artifact.manifest.computed_precision is None:
        update["computed_precision"] = "fp32"  # int8 weights, float math: say so
    manifest = artifact.manifest.model_copy(update=update)
    (staging / MANIFEST_NAME).write_bytes(dump_manifest(manifest))
    return Artifact(staging, manifest)
