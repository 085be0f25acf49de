"""A unirun backend as an ``onnx.backend`` backend, and the engine run natively (through the
plugin's ``native_runner``) shaped the same way."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from unirun import _registry
from unirun.backend import SupportsNativeRunner
from unirun.device import Device
from unirun.dtypes import DType
from unirun.errors import UnirunError

__all__ = ["NativeBackend", "native_backend", "onnx_backend"]


def _unirun_device(device: str) -> Device:
    """ONNX's ``"CPU"``/``"CUDA:1"`` or a unirun device string."""
    return Device.parse(device.lower())


def onnx_backend(name: str, **load_args: Any) -> type[Any]:
    """An ``onnx.backend.base.Backend`` subclass that runs models through unirun backend ``name``.

    ``load_args`` go to :func:`unirun.load` (``precision``, ``options``…); compiles are not
    cached unless ``cache`` is given.
    """
    from onnx.backend.base import Backend, BackendRep

    import unirun

    args = {"cache": False, **load_args}

    class UnirunRep(BackendRep):
        def __init__(self, model: unirun.Model) -> None:
            self.model = model

        def run(self, inputs: Any, **kwargs: Any) -> tuple[Any, ...]:
            model = self.model
            if isinstance(inputs, Mapping):
                feeds: Any = {k: _as_declared(v, model, k) for k, v in inputs.items()}
            elif isinstance(inputs, (list, tuple)) and len(inputs) <= len(model.inputs):
                # By name: a list is also a sequence input's value.
                named = zip(inputs, model.inputs, strict=False)
                feeds = {s.name: _as_declared(v, model, s.name) for v, s in named}
            elif isinstance(inputs, (list, tuple)):
                feeds = list(inputs)  # too many: let the core say so
            else:
                feeds = {model.inputs[0].name: _as_declared(inputs, model, model.inputs[0].name)}
            return tuple(model.infer(feeds).values())

        def close(self) -> None:
            self.model.close()

    class UnirunBackend(Backend):
        backend_name = name

        @classmethod
        def prepare(cls, model: Any, device: str = "CPU", **kwargs: Any) -> UnirunRep:
            return UnirunRep(
                unirun.load(model, backend=name, device=_unirun_device(device), **args, **kwargs)
            )

        @classmethod
        def supports_device(cls, device: str) -> bool:
            try:
                wanted = _unirun_device(device)
                return any(wanted.matches(d.device) for d in _available(name).devices)
            except (UnirunError, ValueError):
                return False

    UnirunBackend.__name__ = UnirunBackend.__qualname__ = f"Unirun_{name}"
    return UnirunBackend


def _available(name: str) -> Any:
    import unirun

    for info in unirun.backends():
        if info.name == name:
            return info
    raise UnirunError(f"no backend {name!r}")


def _as_declared(value: Any, model: Any, name: str) -> Any:
    """Reinterpret raw storage (``uint16`` bits for bfloat16, ``uint8`` for float8) as the
    declared narrow type; anything else is left for the core to check."""
    spec = next((s for s in model.inputs if s.name == name), None)
    if spec is None or spec.kind is not None or not isinstance(value, np.ndarray):
        return value
    want = spec.dtype.numpy
    if value.dtype != want and value.dtype.kind in "iu" and spec.dtype.bits in (4, 8, 16):
        if value.dtype.itemsize == want.itemsize and spec.dtype.is_float:
            return value.view(want)
        if spec.dtype in (DType.INT4, DType.UINT4):
            return value.astype(want)
    return value


class _NativeRep:
    """A model prepared by a plugin's ``native_runner``, as ``onnx.backend`` expects it."""

    def __init__(self, run: Callable[[Mapping[str, Any]], Sequence[Any]], names: list[str]):
        self._run = run
        self.names = names

    def run(self, inputs: Any, **kwargs: Any) -> list[Any]:
        if isinstance(inputs, Mapping):
            return list(self._run(inputs))
        return list(self._run(dict(zip(self.names, inputs, strict=False))))


class NativeBackend:
    """The engine's own API, as a plugin exposes it (``SupportsNativeRunner.native_runner``),
    shaped like an ``onnx.backend`` backend for the node-suite baseline."""

    def __init__(self, name: str, backend: SupportsNativeRunner) -> None:
        self.name = name
        self._backend = backend

    def prepare(self, model: Any, device: str = "cpu", **kwargs: Any) -> _NativeRep:
        run = self._backend.native_runner(model.SerializeToString(), _unirun_device(device))
        constants = {t.name for t in model.graph.initializer}
        names = [v.name for v in model.graph.input if v.name not in constants]
        return _NativeRep(run, names)


def native_backend(name: str) -> NativeBackend:
    """The engine behind backend ``name``, run directly (bypassing unirun) through the plugin's
    optional ``native_runner``."""
    backend = _registry.get_backend(name)
    if not isinstance(backend, SupportsNativeRunner):
        raise UnirunError(
            f"backend {name!r} offers no native baseline: its plugin has no native_runner() "
            "(see unirun.backend.SupportsNativeRunner)"
        )
    return NativeBackend(name, backend)
