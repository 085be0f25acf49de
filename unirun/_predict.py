"""``unirun.predict``: load once, run many times; models kept by path are reloaded when their
files change, and a model evicted from the cache is closed by the last call running on it."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from .artifact import MANIFEST_NAME, Artifact
from .cache import source_stamps
from .model import Model
from .source import OnnxModel

__all__ = ["predict"]

Source = Any


class _Loaded:
    """A model ``predict`` keeps: the files it came from (to notice when they change) and the
    calls running on it (an evicted model is closed by the last of them)."""

    __slots__ = ("evicted", "files", "model", "stamp", "users")

    def __init__(self, model: Model, files: tuple[Path, ...], stamp: tuple[Any, ...]) -> None:
        self.model = model
        self.files = files
        self.stamp = stamp
        self.users = 0
        self.evicted = False


_predict_models: OrderedDict[tuple[Any, ...], Model] = OrderedDict()
_predict_info: dict[Model, _Loaded] = {}  # every model predict loaded and has not closed
_predict_lock = threading.Lock()
_PREDICT_KEEP = 4


def predict(source: Source, inputs: Any, **load_args: Any) -> dict[str, np.ndarray[Any, Any]]:
    """Load (once) and run: later calls with the same model and arguments reuse the loaded
    model. Keeps the last few models loaded; takes the keyword arguments of :func:`load`.

    A model given by path is loaded again when its file, or a file it references (external
    weights, an artifact's payload), changes: each call compares their modification time,
    size and inode with those of the loaded files (a few ``stat`` calls, no hashing).
    Thread-safe: a model that falls out of the cache is closed once no call runs on it."""
    key = (_source_key(source), tuple(sorted((k, repr(v)) for k, v in load_args.items())))
    with _predict_lock:
        model = _predict_models.get(key)
        entry = None if model is None else _predict_info[model]
        if entry is not None:
            entry.users += 1
            _predict_models.move_to_end(key)
    if entry is not None and entry.files and _stamp(entry.files) != entry.stamp:
        with _predict_lock:
            if _predict_models.get(key) is entry.model:
                del _predict_models[key]
                entry.evicted = True
        _done(entry)
        entry = None
    if entry is None:
        entry = _predict_load(key, source, load_args)
    try:
        return entry.model.infer(inputs)
    finally:
        _done(entry)


def _predict_load(key: tuple[Any, ...], source: Source, load_args: dict[str, Any]) -> _Loaded:
    files: tuple[Path, ...] = ()
    stamp: tuple[Any, ...] = ()
    if isinstance(source, (str, os.PathLike)) and not Path(source).is_dir():
        # Read the model here, so that the files stamped are those this load reads.
        path = Path(source).resolve()
        before = _stamp((path,))
        stamps = source_stamps(load_args.get("cache", True))
        source = OnnxModel.from_source(path, stamps=stamps)
        files = (path, *source.external_files)
        stamp = before + _stamp(files[1:])
    from .api import load

    model = load(source, **load_args)
    if isinstance(source, (str, os.PathLike)):  # an artifact directory
        folder = model.artifact.directory
        files = (folder / MANIFEST_NAME, *(folder / f.path for f in model.artifact.manifest.files))
        stamp = _stamp(files)
    entry = _Loaded(model, files, stamp)
    entry.users = 1
    with _predict_lock:
        evicted = [_predict_models.pop(key)] if key in _predict_models else []
        _predict_models[key] = model
        _predict_info[model] = entry
        while len(_predict_models) > _PREDICT_KEEP:
            evicted.append(_predict_models.popitem(last=False)[1])
        idle = []
        for old in evicted:
            info = _predict_info[old]
            info.evicted = True
            if not info.users:
                idle.append(_predict_info.pop(old).model)
    for old_model in idle:
        old_model.close()
    return entry


def _done(entry: _Loaded) -> None:
    """A call on ``entry`` is over; the last call on an evicted model closes it."""
    with _predict_lock:
        entry.users -= 1
        idle = entry.evicted and not entry.users
        if idle:
            del _predict_info[entry.model]
    if idle:
        entry.model.close()


def _stamp(files: tuple[Path, ...]) -> tuple[Any, ...]:
    stamps: list[Any] = []
    for file in files:
        try:
            st = file.stat()
        except OSError:
            stamps.append(None)
            continue
        stamps.append((st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev))
    return tuple(stamps)


def _source_key(source: Source) -> tuple[Any, ...]:
    if isinstance(source, (str, os.PathLike)):
        return ("path", str(Path(source).resolve()))
    if isinstance(source, Artifact):
        return ("artifact", str(source.directory))
    return ("model", OnnxModel.from_source(source).sha256)
