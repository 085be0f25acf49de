"""``--input``, ``--shape`` and ``--output`` values of the commands that run a model: checked
before anything is loaded, so a bad command line exits 2 and costs nothing."""

from __future__ import annotations

import json
import math
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import typer
from pydantic import ValidationError

from ..inputs import Given, InputPlan, Value
from ..options import CompileOptions, ShapeRange

if TYPE_CHECKING:
    from ..model import Model

Array = np.ndarray[Any, Any]

#: The largest dimension ``--shape`` accepts (ONNX Runtime and OpenVINO index with int32 in
#: places; nothing real comes near it).
MAX_DIM = 2**31 - 1


def _bad(message: str, param: str = "--input") -> typer.BadParameter:
    return typer.BadParameter(message, param_hint=param)


def _header(fh: IO[bytes], where: str) -> tuple[tuple[int, ...], np.dtype[Any]]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(fh)
        else:
            raise _bad(f"{where}: .npy format version {version} is not supported (1.0 or 2.0)")
    except typer.BadParameter:
        raise
    except Exception as exc:  # numpy's header parser raises ValueError, SyntaxError, TokenError…
        raise _bad(f"{where} is not a readable .npy array ({type(exc).__name__}: {exc})") from None
    if dtype.hasobject:
        raise _bad(f"{where} holds Python objects, which unirun never unpickles")
    return tuple(shape), dtype


def _check(shape: tuple[int, ...], dtype: np.dtype[Any], available: int, where: str) -> None:
    need = math.prod(shape) * dtype.itemsize
    if need > available:
        raise _bad(
            f"{where}: its header says {dtype}{list(shape)} ({need:,} bytes), but the file holds "
            f"{available:,} bytes of data: truncated or corrupt"
        )


def read_npy(path: Path) -> Array:
    """One ``.npy`` array; the header is checked against the file size before reading."""
    where = str(path)
    try:
        with path.open("rb") as fh:
            shape, dtype = _header(fh, where)
            _check(shape, dtype, path.stat().st_size - fh.tell(), where)
        array: Array = np.load(path, allow_pickle=False)
    except OSError as exc:
        raise _bad(f"cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise _bad(f"cannot read {path}: {exc}") from exc
    return array


def read_npz(path: Path) -> dict[str, Array]:
    """Every array of an ``.npz`` archive, each member's header checked first."""
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                where = f"{path}:{info.filename}"
                with archive.open(info) as fh:
                    shape, dtype = _header(fh, where)
                    _check(shape, dtype, info.file_size - fh.tell(), where)
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except typer.BadParameter:
        raise
    except OSError as exc:
        raise _bad(f"cannot read {path}: {exc.strerror or exc}") from exc
    except Exception as exc:  # zipfile and zlib raise many types for a damaged archive
        raise _bad(f"cannot read {path} as an .npz archive: {exc}") from exc


def parse_value(text: str) -> Value | None:
    """A literal (``16000``, ``0.5``, ``true``, ``[1, 2]``, ``"text"``) read as JSON; None when
    ``text`` is not one."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if data is None or isinstance(data, dict):
        return None
    try:
        array = np.asarray(data)
    except (ValueError, RecursionError):
        raise _bad(
            f"{text[:80]!r}: a list value must be rectangular (like [[1, 2], [3, 4]])"
        ) from None
    if array.dtype == object:
        raise _bad(f"{text[:80]!r}: a number too large for any tensor type")
    return Value(text, array)


def read_inputs(values: Sequence[str]) -> dict[str, Given]:
    """``NAME=FILE.npy``, ``NAME=VALUE`` (a literal) or ``FILE.npz`` (arrays named after the
    inputs). Files are read and checked here; literals are cast once the model is known."""
    feeds: dict[str, Given] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep:
            if not value.endswith(".npz"):
                raise _bad(f"{value!r}: write NAME=FILE.npy, NAME=VALUE or FILE.npz")
            feeds.update(read_npz(Path(value)))
            continue
        if not name:
            raise _bad(f"{value!r}: the input name is missing (NAME=FILE.npy or NAME=VALUE)")
        if rest.endswith(".npz"):
            raise _bad(f"{value!r}: give an .npz file without NAME=")
        literal = None if rest.endswith(".npy") else parse_value(rest)
        feeds[name] = literal if literal is not None else read_npy(Path(rest))
    return feeds


def parse_shapes(values: Sequence[str]) -> dict[str, Any]:
    """``name=1x3x224x224`` (fixed) or ``name=1x3x224x224:8x3x224x224:32x3x224x224``."""
    shapes: dict[str, Any] = {}
    for value in values:
        name, sep, spec = value.partition("=")
        parts = spec.split(":")
        try:
            dims = [tuple(_dim(d) for d in part.lower().split("x")) for part in parts]
        except ValueError:
            dims = []
        if not sep or not name or len(dims) not in (1, 3):
            raise _bad(
                f"{value!r}: write NAME=1x3x224x224 or NAME=MINxDIMS:OPTxDIMS:MAXxDIMS "
                f"(each size a whole number from 0 to {MAX_DIM})",
                "--shape",
            )
        shapes[name] = dims[0] if len(dims) == 1 else tuple(dims)
    try:
        CompileOptions(shapes=shapes)
    except ValidationError as exc:
        problem = "; ".join(str(e["msg"]) for e in exc.errors())
        raise _bad(f"{', '.join(values)}: {problem}", "--shape") from None
    return shapes


def _dim(text: str) -> int:
    text = text.strip()
    if not text.isascii() or not text.isdigit() or int(text) > MAX_DIM:
        raise ValueError(text)
    return int(text)


def shape_ranges(shapes: dict[str, Any]) -> dict[str, ShapeRange]:
    """Parsed ``--shape`` values as :class:`ShapeRange` (for inventing inputs of an artifact)."""
    return CompileOptions(shapes=shapes).shapes


def check_output(path: Path | None, param: str = "--output") -> None:
    """A file to write must be writable where it is asked for; checked before any work."""
    if path is None:
        return
    if path.is_dir():
        raise _bad(f"{path} is a directory; give a file name", param)
    parent = path.parent
    if not parent.is_dir():
        raise _bad(f"the folder {parent} does not exist; create it first", param)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise _bad(f"cannot write in the folder {parent} (permission denied)", param)


# -- from arguments to a loaded model and its feeds ------------------------------------------


def onnx_graph(path: Path) -> Any:
    """The graph of an ``.onnx`` file (without external weights), which the input inventor
    mines for values; None for an artifact directory or a file onnx cannot read (``load``
    reports that properly)."""
    if path.is_dir():
        return None
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception:  # unirun.load names the problem with this file
        return None


def fastest_sample(graph: Any, given: dict[str, Given]) -> dict[str, Array] | None:
    """What ``-b fastest`` times on: the given inputs (literals cast to the graph's types);
    it invents the rest itself."""
    if not given:
        return None
    from ..source import graph_inputs

    specs = {s.name: s for s in graph_inputs(graph)} if graph is not None else {}
    sample: dict[str, Array] = {}
    for name, value in given.items():
        if isinstance(value, Value):
            spec = specs.get(name)
            sample[name] = value.to(spec) if spec is not None else value.array
        else:
            sample[name] = value
    return sample


def plan_for(
    model: Model,
    graph: Any,
    given: dict[str, Given],
    shapes: dict[str, Any],
    seed: int,
) -> InputPlan:
    """The feeds for ``model``: ``given`` plus invented inputs (declared shapes first, then the
    ``--shape`` sizes given for an artifact)."""
    bounds = {**model.options.shapes, **(shape_ranges(shapes) if shapes else {})}
    return InputPlan(model.inputs, graph=graph, shapes=bounds, given=given, seed=seed)
