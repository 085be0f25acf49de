"""Machinery behind the conformance kit: locating the backend (or a plugin source checkout
made discoverable without installing it), test data with edge values, and small models."""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unirun import _registry
from unirun.backend import DeviceInfo, Probe
from unirun.dtypes import DType
from unirun.errors import BackendNotFoundError, UnirunError
from unirun.options import ShapeRange
from unirun.source import graph_inputs
from unirun.tensor import TensorSpec, random_feeds

from . import models

__all__ = ["load_request", "plugin_from_source"]

Array = np.ndarray[Any, Any]


# -- making a source checkout discoverable -------------------------------------------------------


@contextlib.contextmanager
def plugin_from_source(path: str | Path) -> Iterator[None]:
    """Make the plugin in ``path`` (a folder with ``pyproject.toml`` and ``src/``) discoverable
    through its entry points without installing it: a temporary ``.dist-info`` generated from
    pyproject.toml goes on ``sys.path`` beside ``src``, until the block ends."""
    root = Path(path).resolve()
    project = _read_toml(root / "pyproject.toml").get("project", {})
    name = project.get("name")
    if not name:
        raise UnirunError(f"{root / 'pyproject.toml'} has no [project] name")
    version = project.get("version") or _dynamic_version(root) or "0+unknown"
    groups = project.get("entry-points", {})
    with tempfile.TemporaryDirectory(prefix="unirun-plugin-") as tmp:
        info = Path(tmp) / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
        )
        lines = []
        for group, entries in groups.items():
            lines.append(f"[{group}]")
            lines.extend(f"{key} = {value}" for key, value in entries.items())
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        added = [tmp, str(root / "src")]
        sys.path[:0] = added
        importlib.invalidate_caches()
        _registry._reset()
        backend_object.cache_clear()
        try:
            yield
        finally:
            for entry in added:
                with contextlib.suppress(ValueError):
                    sys.path.remove(entry)
            importlib.invalidate_caches()
            _registry._reset()
            backend_object.cache_clear()


def _read_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[import-not-found]
    with path.open("rb") as fh:
        data: dict[str, Any] = tomllib.load(fh)
    return data


def _dynamic_version(root: Path) -> str | None:
    hatch = _read_toml(root / "pyproject.toml").get("tool", {}).get("hatch", {})
    file = hatch.get("version", {}).get("path")
    if not file:
        return None
    found = re.search(
        r"""__version__\s*=\s*["']([^"']+)["']""", (root / file).read_text(encoding="utf-8")
    )
    return found.group(1) if found else None


# -- internals -----------------------------------------------------------------------------------


def _find_backend(name: str, plugin_path: str | Path | None) -> Any:
    entries = _registry._all_entries()
    if name not in entries and plugin_path is not None:
        with plugin_from_source(plugin_path):
            entries = _registry._all_entries()
            if name in entries:
                return _registry._materialise(entries[name])
    if name not in entries:
        raise BackendNotFoundError(
            f"no backend named {name!r} is installed; install the plugin (pip install -e .) "
            "or set plugin_path on the test class"
        )
    return _registry._materialise(entries[name])


class _BackendCache:
    def __init__(self) -> None:
        self._found: dict[tuple[str, str], Any] = {}
        self._lock = threading.RLock()  # plugin_from_source clears it from inside a lookup

    def __call__(self, name: str, plugin_path: str | Path | None) -> Any:
        key = (name, str(plugin_path))
        with self._lock:
            if key not in self._found:
                self._found[key] = _find_backend(name, plugin_path)
            return self._found[key]

    def cache_clear(self) -> None:
        with self._lock:
            self._found.clear()


backend_object = _BackendCache()


def status(name: str) -> tuple[Probe, tuple[DeviceInfo, ...]]:
    entries = _registry._all_entries()
    if name not in entries:
        raise BackendNotFoundError(f"no backend named {name!r} is installed")
    entry = entries[name]
    backend = _registry._materialise(entry)
    probe = _registry._probe(entry, backend)
    devices = _registry._devices(entry, backend) if probe.available else ()
    return probe, devices


def child_env() -> dict[str, str]:

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


def xfail_reason(fn: Any) -> str:
    for mark in getattr(fn, "pytestmark", []):
        if mark.name == "xfail":
            reason = mark.kwargs.get("reason", "")
            if isinstance(reason, str) and reason.strip():
                return reason
    return ""


def matches_key(key: str, name: str, ids: Sequence[str]) -> bool:
    test, _, rest = key.partition("[")
    if test != name:
        return False
    wanted = [part for part in rest.rstrip("]").split("-") if part]
    return all(part in ids for part in wanted)


def feeds_for(model: Any, sizes: Mapping[str, int]) -> dict[str, Array]:
    specs = graph_inputs(model)
    bounds = {
        s.name: ShapeRange.fixed(tuple(d if isinstance(d, int) else sizes[d] for d in s.shape))
        for s in specs
        if s.shape is not None
    }
    return random_feeds(specs, bounds, seed=11)


def normal(shape: tuple[int, ...], seed: int) -> Array:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def edge_values(dtype: DType, shape: tuple[int, ...]) -> Array:
    """Values that catch truncation, sign and special-value bugs, all exact in ``dtype``."""
    count = int(np.prod(shape))
    if dtype is DType.STRING:
        values: list[Any] = ["", "unirun", "ünïcödé ✓", "x" * 70, "a\x00b", " "]
        return np.array((values * count)[:count], dtype=object).reshape(shape)
    if dtype is DType.BOOL:
        flags: Array = np.arange(count) % 3 == 0
        return flags.reshape(shape)
    target = dtype.numpy
    if dtype.is_float:
        exact = [0.0, 1.0, -2.0, 0.5, 3.0, -1.5]
        if dtype in (DType.FLOAT16, DType.BFLOAT16, DType.FLOAT32, DType.FLOAT64):
            exact[4:] = [float("nan"), float("-inf")]
        return np.array((exact * count)[:count], np.float32).astype(target).reshape(shape)
    if dtype in (DType.COMPLEX64, DType.COMPLEX128):
        pairs = [0, 1 + 2j, -1.5j, 0.25 - 4j, complex("nan+1j"), -3]
        return np.array((pairs * count)[:count], target).reshape(shape)
    import ml_dtypes

    info = ml_dtypes.iinfo(target)  # type: ignore[no-untyped-call]
    signed = info.min < 0
    ints = [0, 1, int(info.max), int(info.min), 3, -1 if signed else 2]
    if target.kind in "iu":  # numpy's own integers take Python ints of any size directly
        return np.array((ints * count)[:count], target).reshape(shape)
    return np.array((ints * count)[:count], np.int64).astype(target).reshape(shape)


def same_values(got: Array, want: Array, dtype: DType) -> bool:
    if dtype is DType.STRING:
        return [str(v) for v in got.reshape(-1)] == [str(v) for v in want.reshape(-1)]
    if dtype.is_float:
        got, want = got.astype(np.float64), want.astype(np.float64)
    elif got.dtype.kind not in "iubc":  # ml_dtypes integers
        got, want = got.astype(np.int64), want.astype(np.int64)
    return bool(np.array_equal(got, want, equal_nan=got.dtype.kind in "fc"))


def assert_shape_agrees(got: TensorSpec, want: TensorSpec, bounds: ShapeRange | None) -> None:
    if want.shape is None or got.shape is None:
        return
    assert len(got.shape) == len(want.shape), f"{got}: rank differs from the graph's {want}"
    for axis, (g, w) in enumerate(zip(got.shape, want.shape, strict=True)):
        if isinstance(w, int):
            assert g == w, f"{got}: dimension {axis} should be {w} as in the graph"
        elif bounds is not None and bounds.min[axis] == bounds.max[axis]:
            assert g in (w, bounds.min[axis]) or isinstance(g, str), f"{got} vs {want}"
        else:
            assert isinstance(g, str), f"{got}: dimension {axis} is symbolic ({w}) in the graph"


def assert_readable(error: UnirunError) -> None:
    text = str(error)
    assert "Traceback (most recent call last)" not in text, "the message carries a traceback"
    assert len(text) < 2000, f"the message is {len(text)} characters long"


def single_node(op: str, *, domain: str = "", inputs: Sequence[str] = ("x",)) -> Any:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node(op, list(inputs), ["y"], name=f"{op.lower()}_node", domain=domain)],
        "single",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    opsets = [helper.make_opsetid("", models.OPSET)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model


def reshape_model() -> Any:
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape")],
        "reshape",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [numpy_helper.from_array(np.array([2, 3], np.int64), "shape")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", models.OPSET)])
    model.ir_version = 8
    return model


def aliasing_model() -> Any:
    """Outputs an engine may be tempted to return as views of the input ``x`` [3]: ``same``
    (Identity), ``reshaped`` (Reshape to [3, 1]) and ``x`` itself (a graph output that is also
    its input)."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["x"], ["same"], name="identity"),
            helper.make_node("Reshape", ["x", "column"], ["reshaped"], name="reshape"),
        ],
        "aliasing",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [
            helper.make_tensor_value_info("same", TensorProto.FLOAT, [3]),
            helper.make_tensor_value_info("reshaped", TensorProto.FLOAT, [3, 1]),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [3]),
        ],
        [numpy_helper.from_array(np.array([3, 1], np.int64), "column")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", models.OPSET)])
    model.ir_version = 8
    return model


#: Operators whose NaN handling differs between engines (max/min-based kernels may return the
#: other operand), and a whole CNN, for ``BackendConformance.test_nan_propagates``.
NAN_CASES = ("Relu", "MaxPool", "ReduceMax", "Clip", "Max", "conv_net")


def nan_model(case: str) -> Any:
    """A model on which IEEE arithmetic (and ONNX's reference) turns an all-NaN input into an
    all-NaN output: one ``case`` operator on ``x`` [1, 2, 4, 4], or ``conv_net``."""
    from onnx import TensorProto, helper, numpy_helper

    if case == "conv_net":
        return models.conv_net(batch=1, size=8)
    inputs, inits, shape = ["x"], [], [1, 2, 4, 4]
    attrs: dict[str, Any] = {}
    if case == "MaxPool":
        attrs, shape = {"kernel_shape": [2, 2], "strides": [2, 2]}, [1, 2, 2, 2]
    elif case == "ReduceMax":
        attrs, shape = {"keepdims": 1}, [1, 1, 1, 1]
    elif case == "Clip":
        inputs = ["x", "low", "high"]
        inits = [
            numpy_helper.from_array(np.array(-1, np.float32), "low"),
            numpy_helper.from_array(np.array(1, np.float32), "high"),
        ]
    elif case == "Max":
        inputs = ["x", "zero"]
        inits = [numpy_helper.from_array(np.zeros(1, np.float32), "zero")]
    graph = helper.make_graph(
        [helper.make_node(case, inputs, ["y"], name=f"{case.lower()}_node", **attrs)],
        f"nan_{case.lower()}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", models.OPSET)])
    model.ir_version = 8
    return model


def load_request(artifact: Any, device: str = "cpu", cache_dir: Path | None = None) -> Any:
    """The :class:`~unirun.backend.LoadRequest` the core would hand the artifact's backend, for
    tests that call a plugin's ``load`` directly (to see what it does with an edited manifest,
    say). The artifact must already be verified (``Artifact.open``)."""
    from unirun._match import load_request as make
    from unirun.backend import DeviceInfo
    from unirun.device import Device

    name = artifact.manifest.backend
    backend = _registry.backend_object(name)
    return make(name, backend, DeviceInfo(Device.parse(device)), artifact, cache_dir)
