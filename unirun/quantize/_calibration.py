"""Calibration data for ``precision="int8"``: read once, checked, hashed, split."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, UnirunError
from ..tensor import TensorSpec, as_array

__all__ = ["MIN_SAMPLES", "Calibration", "Feeds"]

Array = np.ndarray[Any, Any]
Feeds = dict[str, Array]

#: Fewer samples than this give ranges that do not describe the data (NNCF's default is 300).
MIN_SAMPLES = 16
_SUFFIXES = (".npy", ".npz")


@dataclass(frozen=True, eq=False)
class Calibration:
    """Calibration data for ``precision="int8"``.

    ``unirun.load(..., calibration=...)`` takes an iterable of feeds or a directory of ``.npy``/
    ``.npz`` files and makes one of these; build one yourself to change the defaults:

    * ``samples``: the feeds, each in any form ``Model.infer`` takes (a dict name → array, a
      sequence in input order, or one array for a one-input model). Give 100–300 samples like
      the ones the model will see; at least :data:`MIN_SAMPLES`.
    * ``held_back``: the fraction of the samples, taken from the end, that only measure the
      quantized model's error (at least 2); the ranges come from the others.
    * ``reduce_range``: quantize weights to 7 bits, which avoids overflow in the int8 kernels of
      CPUs without a non-saturating int8 dot product (VNNI, AMX, ARM dot product). None: decide
      from the CPU (reduced where it lacks one or cannot be told).
    * ``labels``: how messages name each sample (file names for a directory; else ``#i``).
    """

    samples: tuple[Any, ...]
    held_back: float = 0.2
    reduce_range: bool | None = None
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 < self.held_back < 1.0:
            raise InputError(f"held_back is a fraction between 0 and 1, got {self.held_back}")
        if self.labels and len(self.labels) != len(self.samples):
            raise InputError(f"{len(self.labels)} labels for {len(self.samples)} samples")

    def __repr__(self) -> str:
        return (
            f"Calibration({len(self.samples)} samples, held_back={self.held_back}, "
            f"reduce_range={self.reduce_range})"
        )

    @classmethod
    def of(cls, value: Any) -> Calibration:
        """``value`` as a Calibration: a Calibration, a directory path, or an iterable of feeds
        (read once, so a generator works)."""
        if isinstance(value, Calibration):
            return value
        if isinstance(value, (str, os.PathLike)):
            return cls.from_directory(value)
        if isinstance(value, (Mapping, np.ndarray)) or not isinstance(value, Iterable):
            raise InputError(
                f"calibration= takes an iterable of feeds (e.g. a list of dicts name → array) or "
                f"a directory of .npy/.npz files, not {type(value).__name__}"
                + ("; wrap one feed in a list" if isinstance(value, Mapping) else "")
            )
        return cls(tuple(value))

    @classmethod
    def from_directory(cls, path: str | os.PathLike[str], **options: Any) -> Calibration:
        """One sample per file, in file-name order: a ``.npz`` holds one array per input name,
        a ``.npy`` the one input of a one-input model. Other files are ignored."""
        directory = Path(path)
        if not directory.is_dir():
            what = "is not a directory" if directory.exists() else "does not exist"
            raise InputError(f"calibration directory {directory} {what}")
        files = sorted(
            f for f in directory.iterdir() if f.suffix.lower() in _SUFFIXES and f.is_file()
        )
        if not files:
            raise InputError(f"calibration directory {directory} holds no .npy or .npz files")
        samples: list[Any] = []
        for file in files:
            try:
                if file.suffix.lower() == ".npy":
                    samples.append(np.load(file, allow_pickle=False))
                else:
                    with np.load(file, allow_pickle=False) as archive:
                        samples.append({name: archive[name] for name in archive.files})
            except (OSError, ValueError, EOFError) as exc:
                raise InputError(f"calibration file {file} cannot be read: {exc}") from exc
        return cls(tuple(samples), labels=tuple(f.name for f in files), **options)

    def label(self, index: int) -> str:
        return self.labels[index] if self.labels else f"#{index}"

    def bind(self, specs: Sequence[TensorSpec]) -> list[Feeds]:
        """Every sample as a dict input name → numpy array. Names, dtypes and shapes are
        checked later, by the model (``InputError`` naming the sample and the input)."""
        if len(self.samples) < MIN_SAMPLES:
            raise InputError(
                f"the calibration set has {len(self.samples)} samples; int8 needs at least "
                f"{MIN_SAMPLES} (100–300 like the data the model will see is better)"
            )
        return [self._feeds(i, item, specs) for i, item in enumerate(self.samples)]

    def _feeds(self, index: int, item: Any, specs: Sequence[TensorSpec]) -> Feeds:
        by_name = {spec.name: spec for spec in specs}
        try:
            if isinstance(item, Mapping):
                return {
                    str(k): as_array(v, by_name.get(str(k)) or _unknown(str(k)))
                    for k, v in item.items()
                }
            if isinstance(item, (list, tuple)) and (len(specs) != 1 or len(item) == 1):
                if len(item) != len(specs):
                    raise InputError(
                        f"{len(item)} positional arrays, but the model takes {len(specs)}: "
                        f"{', '.join(map(str, specs))}"
                    )
                return {s.name: as_array(v, s) for s, v in zip(specs, item, strict=True)}
            if len(specs) == 1:
                return {specs[0].name: as_array(item, specs[0])}
            raise InputError(
                f"the model takes {len(specs)} inputs ({', '.join(map(str, specs))}); give each "
                "sample as a dict name → array or a sequence in that order"
            )
        except InputError as exc:
            raise self.error(index, exc) from None

    def error(self, index: int, exc: UnirunError) -> InputError:
        """``exc`` (about one sample) restated with the sample it is about."""
        return InputError(
            f"calibration sample {self.label(index)}: {exc}", getattr(exc, "name", None)
        )

    def split(self, feeds: Sequence[Feeds]) -> tuple[list[Feeds], list[Feeds]]:
        """(samples for the ranges, held-back samples that measure the error)."""
        held = max(2, round(len(feeds) * self.held_back))
        return list(feeds[:-held]), list(feeds[-held:])


def _unknown(name: str) -> TensorSpec:
    """A stand-in spec for a name the model lacks (the model's check then names it)."""
    from ..dtypes import DType

    return TensorSpec(name, DType.FLOAT32, None)


def digest(feeds: Sequence[Feeds]) -> str:
    """sha256 over every sample in order: names, dtypes, shapes and bytes."""
    sha = hashlib.sha256()
    for feed in feeds:
        for name in sorted(feed):
            array = np.ascontiguousarray(feed[name])
            sha.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
            sha.update(str(array.tolist()).encode() if array.dtype.hasobject else array.tobytes())
        sha.update(b"\1")
    return sha.hexdigest()
