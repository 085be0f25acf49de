"""Tensor specs and the one input normaliser every backend shares."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .dtypes import DType
from .errors import InputError
from .values import TensorType, ValueType, from_json

__all__ = ["Dim", "OnDevice", "TensorSpec", "as_array", "random_feeds"]

#: A dimension: a fixed size, or a name for a size fixed only at run time.
Dim = int | str


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """Name, element type and shape of a model input or output.

    ``shape`` holds ints for fixed dimensions and strings for symbolic ones (``"N"``, or ``"?"``
    when the model leaves a dimension unnamed); ``None`` means the rank itself is unknown.

    ``kind`` is None for a tensor. For a sequence, map or optional value it is its
    :mod:`unirun.values` type (``str(spec.kind)``: ``"seq(map(int64, float32))"``); ``dtype``
    is then the element type of the tensors inside (of a map's values) and ``shape`` None.
    """

    name: str
    dtype: DType
    shape: tuple[Dim, ...] | None
    kind: ValueType | None = None

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    @property
    def is_static(self) -> bool:
        return self.shape is not None and all(isinstance(d, int) for d in self.shape)

    @property
    def is_tensor(self) -> bool:
        return self.kind is None

    @classmethod
    def of(cls, name: str, kind: ValueType) -> TensorSpec:
        """The spec of value ``name`` of type ``kind``: a plain tensor spec for a
        :class:`~unirun.values.TensorType`, else one with ``kind`` set."""
        if isinstance(kind, TensorType):
            return cls(name, kind.dtype, kind.shape)
        return cls(name, kind.leaf.dtype, None, kind)

    def __str__(self) -> str:
        if self.kind is not None:
            return f"{self.name}: {self.kind}"
        dims = "?" if self.shape is None else ", ".join(str(d) for d in self.shape)
        return f"{self.name}: {self.dtype}[{dims}]"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "dtype": self.dtype.value,
            "shape": None if self.shape is None else list(self.shape),
        }
        if self.kind is not None:
            data["kind"] = self.kind.to_json()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TensorSpec:
        shape = data.get("shape")
        kind = data.get("kind")
        return cls(
            str(data["name"]),
            DType(data["dtype"]),
            None if shape is None else tuple(shape),
            None if kind is None else from_json(kind),
        )


_DLPACK_HOST = (1, 3)  # kDLCPU, kDLCUDAHost: memory numpy can read


def as_array(value: Any, spec: TensorSpec) -> np.ndarray[Any, Any]:
    """Turn one feed into a numpy array without copying when the data already lives on the host.

    Accepts numpy arrays, objects with ``__dlpack__`` (torch, cupy, jax…) or ``__array__``, and
    plain Python scalars/lists (converted to the input's dtype, since they carry none of their own).
    """
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "__dlpack__"):
        device = _dlpack_device(value)
        if device is not None and device[0] not in _DLPACK_HOST:
            raise OnDevice(spec.name, *device)
        try:
            return np.from_dlpack(value)
        except Exception as exc:  # the producer's own code runs here: it may raise anything
            bf16 = _torch_bfloat16(value)
            if bf16 is not None:
                return bf16
            if not hasattr(value, "__array__"):
                raise InputError(
                    f"input {spec.name!r}: cannot read this {type(value).__name__} through "
                    f"DLPack ({exc}); pass a numpy array instead",
                    spec.name,
                ) from exc
    elif _cuda_array(value):
        raise OnDevice(spec.name, 2, -1)
    if hasattr(value, "__array__"):
        try:
            return np.asarray(value)
        except Exception as exc:
            raise InputError(
                f"input {spec.name!r}: cannot convert {type(value).__name__} to an array ({exc})",
                spec.name,
            ) from exc
    if isinstance(value, (bool, int, float, complex, str, Sequence, np.generic)):
        try:
            # A literal the input's dtype cannot hold (70000 as float16, NaN as int64) is
            # refused rather than turned into inf or garbage.
            with np.errstate(over="raise", invalid="raise"):
                return np.asarray(value, dtype=spec.dtype.numpy)
        except (ValueError, TypeError, OverflowError, FloatingPointError) as exc:
            raise InputError(
                f"input {spec.name!r}: cannot convert {value!r:.80} to {spec.dtype} ({exc})",
                spec.name,
            ) from exc
    raise InputError(
        f"input {spec.name!r}: expected an array (numpy, DLPack or __array__ object), got "
        f"{type(value).__name__}",
        spec.name,
    )


class OnDevice(InputError):
    """A feed that lives in device memory reached a path that takes host memory. ``device`` is
    where it lives, as a unirun device when unirun has a kind for it (``cuda:0``; ``cuda`` for
    a CUDA array interface producer, which does not say which GPU), else None."""

    def __init__(self, name: str, dlpack_type: int, index: int) -> None:
        from ._dlpack import DEVICE_NAMES
        from .device import Device

        self.device: Device | None = None
        if dlpack_type in (2, 13):
            self.device = Device("cuda", index if index >= 0 else None)
            where = str(self.device)
        else:
            where = f"{DEVICE_NAMES.get(dlpack_type, f'DLPack device type {dlpack_type}')} {index}"
        super().__init__(
            f"input {name!r} lives on a device ({where}); this model takes host memory: move it "
            "to the CPU first (torch: .cpu(), cupy: .get())",
            name,
        )


def _torch_bfloat16(value: Any) -> np.ndarray[Any, Any] | None:
    """numpy cannot import bfloat16 through DLPack; reinterpret a torch tensor's bits instead."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None or not isinstance(value, torch.Tensor) or value.dtype != torch.bfloat16:
        return None
    import ml_dtypes

    bits: np.ndarray[Any, Any] = np.from_dlpack(value.detach().view(torch.int16))
    result: np.ndarray[Any, Any] = bits.view(np.dtype(ml_dtypes.bfloat16))
    return result


def _cuda_array(value: Any) -> bool:
    try:
        return isinstance(getattr(value, "__cuda_array_interface__", None), dict)
    except Exception:  # a property that refuses (a host tensor of some framework)
        return False


def _dlpack_device(value: Any) -> tuple[int, int] | None:
    try:
        kind, index = value.__dlpack_device__()
        return int(kind), int(index)
    except Exception:  # no answer, or not a (type, id) pair: let np.from_dlpack decide
        return None


def random_feeds(
    specs: Sequence[TensorSpec], shapes: Mapping[str, Any] | None = None, seed: int = 0
) -> dict[str, np.ndarray[Any, Any]]:
    """Random inputs of the right dtype and shape; symbolic dims take ``shapes``' opt size or 1.

    Integers are drawn from 0..9 so that index-like inputs (token ids, positions) stay valid.
    Small and predictable, for tests; the commands invent representative inputs with
    :class:`unirun.inputs.InputPlan` instead.
    """
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray[Any, Any]] = {}
    for spec in specs:
        bounds = (shapes or {}).get(spec.name)
        if bounds is not None:
            shape = tuple(bounds.opt)
        elif spec.shape is None:
            raise InputError(f"input {spec.name!r} has unknown rank; give its shape", spec.name)
        else:
            shape = tuple(d if isinstance(d, int) else 1 for d in spec.shape)
        dtype = spec.dtype
        if dtype is DType.BOOL:
            feeds[spec.name] = rng.random(shape) < 0.5
        elif dtype is DType.STRING:
            feeds[spec.name] = np.full(shape, "unirun", dtype=object)
        elif dtype.is_float or dtype.value.startswith("complex"):
            feeds[spec.name] = rng.standard_normal(shape).astype(dtype.numpy)
        else:
            high = 10 if dtype.bits >= 8 else 2 ** (dtype.bits - 1)
            feeds[spec.name] = rng.integers(0, high, shape).astype(dtype.numpy)
    return feeds
