"""Representative inputs, invented for a model when the caller gives none (``unirun run``,
``compare``, ``bench`` and ``backend="fastest"``). Engine-neutral: it reads the input specs, the
declared ``shapes`` and, when there is one, the ONNX graph.

How sizes and values are chosen (docs/cli.md has the user-facing table):

- A dimension fixed by the model, or by declared ``shapes`` (their ``opt``), is used as is.
- Every other dimension gets a size by its *role*, guessed from the dimension's name, the input's
  name, its rank and the axis: ``batch`` 1, ``channels`` 3, ``spatial`` 224, ``depth`` 16,
  ``audio`` 16000 samples, any other length 256. One symbolic name gets one size in every
  input that uses it.
- Values: floats are standard normal (scalars uniform in 0.5..1.5); integers that index a
  constant table through ``Gather`` span the table; a scalar that the graph compares with
  constants (``Equal(sr, 16000)`` deciding an ``If``) takes one of those constants; masks are
  ones, ``token_type_ids`` zeros, ``position_ids`` a range; other integers 0..9 (uint8
  images 0..255). A categorical feature (strings or integers an ``ai.onnx.ml`` encoder
  knows: OneHotEncoder, LabelEncoder, CategoryMapper) takes random categories the encoder
  knows; other strings are ``"unirun"``.
- Values that are not tensors: a sequence gets two items, a map three keys (those a
  DictVectorizer knows, else ``"a"``, ``"b"``, ``"c"`` or 0, 1, 2) with scalar values, an
  optional its value; their tensors are invented as above, 3 per dimension the model leaves
  open.
- When an engine rejects the invented inputs, :func:`run_first` tries larger sizes (spatial ×2,
  lengths ×4, at most twice) before it gives up with an error that says what was invented and
  how to pass real inputs.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ._graph_hints import Hint, mine
from .dtypes import DType
from .errors import InferenceError, InputError, UnirunError
from .options import ShapeRange
from .tensor import Dim, TensorSpec
from .values import OptionalType, SequenceType, TensorType, ValueType

if TYPE_CHECKING:
    from .model import Model

__all__ = ["Given", "InputPlan", "Invented", "Value", "rejected", "run_first"]

log = logging.getLogger("unirun")

Array = np.ndarray[Any, Any]
Role = Literal["batch", "channels", "spatial", "depth", "audio", "length"]
Style = Literal["cli", "api"]

#: First size, growth factor per retry, for each role (batch and channels never grow).
SIZES: dict[Role, tuple[int, int]] = {
    "batch": (1, 1),
    "channels": (3, 1),
    "spatial": (224, 2),
    "depth": (16, 2),
    "audio": (16000, 2),
    "length": (256, 4),
}
RETRIES = 2
#: The most memory one invented input may take (a --shape typo must not exhaust the machine).
MAX_BYTES = 4 << 30

_WORDS: dict[Role, re.Pattern[str]] = {
    "batch": re.compile(r"^(n|b|bs|num_images|.*batch.*)$"),
    "spatial": re.compile(r"^(h|w|height|width|.*_(h|w|height|width)|(height|width)_.*)$"),
    "depth": re.compile(r"^(d|depth|frames?|num_frames)$"),
    "audio": re.compile(r".*(samples|audio|wav|pcm|waveform|signal).*"),
    "length": re.compile(r".*(seq|len|length|time|steps|tokens|words|past|total).*"),
}
_STATE = re.compile(r"(^|[_.])(state|states|hidden|h0|c0|hx|cx|memory|cache)([_.\d]|$)|^h$|^c$")
_AUDIO_INPUT = re.compile(r".*(audio|wav|waveform|pcm|speech|signal).*")
_RATE = re.compile(r"^(sr|sample_?rate|sampling_?rate|rate)$")


@dataclass(frozen=True)
class Value:
    """A literal given for an input (``--input sr=16000``): cast to the input's dtype once the
    model is known, and reshaped from a scalar when the input takes a single element."""

    text: str
    array: Array

    def to(self, spec: TensorSpec) -> Array:
        if spec.kind is not None:
            raise InputError(
                f"input {spec.name!r} is {spec.kind}, not a tensor; the command line gives "
                "tensors only (leave it out to have one invented, or call unirun from Python)",
                spec.name,
            )
        dtype = spec.dtype.numpy
        if spec.dtype is DType.STRING:
            return self.array.astype(object)
        try:
            with np.errstate(all="ignore"):
                cast = self.array.astype(dtype)
            exact = (
                np.array_equal(cast.astype(self.array.dtype), self.array)
                if not (spec.dtype.is_float or spec.dtype.value.startswith("complex"))
                else True
            )
        except (ValueError, TypeError, OverflowError):
            exact = False
        if not exact:
            raise InputError(
                f"input {spec.name!r} takes {spec.dtype}; {self.text!r} is not a value of that "
                "type",
                spec.name,
            )
        if (
            cast.ndim == 0
            and spec.shape is not None
            and all(d == 1 or isinstance(d, str) for d in spec.shape)
        ):
            cast = cast.reshape((1,) * len(spec.shape))
        return cast


#: What a caller may give for an input: an array, or a literal to cast.
Given = Array | Value


@dataclass(frozen=True)
class Invented:
    """One input unirun made up: its shape and how the values were chosen."""

    name: str
    dtype: DType
    shape: tuple[int, ...]
    how: str
    #: The value's type when it is not a tensor (``"seq(float32[N])"``); ``shape`` is then ().
    kind: str | None = None

    def __str__(self) -> str:
        if self.kind is not None:
            return f"{self.name} {self.kind} ({self.how})"
        return f"{self.name} {self.dtype}[{', '.join(map(str, self.shape))}] ({self.how})"


@dataclass
class _Dim:
    size: int
    factor: int = 1  # growth per retry; 1: never grows
    role: str = ""


class InputPlan:
    """The feeds for one model: what the caller gave, plus invented values for the rest.

    ``graph`` (an ``onnx.ModelProto``) is optional; with it, values are mined from the graph.
    :meth:`feeds` returns the same arrays until :meth:`grow` enlarges the invented sizes.
    """

    def __init__(
        self,
        specs: Sequence[TensorSpec],
        *,
        graph: Any = None,
        shapes: Mapping[str, ShapeRange] | None = None,
        given: Mapping[str, Given] | None = None,
        seed: int = 0,
    ) -> None:
        given = dict(given or {})
        unknown = [k for k in given if k not in {s.name for s in specs}]
        if unknown:
            raise InputError(
                f"no input named {', '.join(map(repr, unknown))}; the model's inputs are "
                f"{', '.join(map(str, specs)) or '(none)'}",
                unknown[0],
            )
        self.specs = list(specs)
        self.seed = seed
        self.attempt = 0
        self.given: dict[str, Array] = {}
        for spec in specs:
            value = given.get(spec.name)
            if isinstance(value, Value):
                self.given[spec.name] = value.to(spec)
            elif value is not None:
                if spec.dtype is DType.STRING and spec.kind is None and value.dtype.kind in "US":
                    value = value.astype(object)  # .npy files hold text as fixed-width unicode
                self.given[spec.name] = value
        self._missing = [s for s in specs if s.name not in self.given]
        self._hints = mine(graph, {s.name for s in self._missing}) if graph is not None else {}
        self._dims = _choose_dims(self.specs, self.given, shapes or {})
        self._feeds: dict[str, Array] | None = None
        self.invented: dict[str, Invented] = {}

    @property
    def sized(self) -> list[str]:
        """The invented inputs whose sizes unirun chose (symbolic dims without bounds)."""
        return [
            s.name
            for s in self._missing
            if s.name in self._dims and any(d.factor > 1 for d in self._dims[s.name])
        ]

    @property
    def last_attempt(self) -> int:
        """The number of the try with the largest sizes (0 when no size can grow)."""
        return RETRIES if self.sized else 0

    def grow(self) -> bool:
        """Enlarge the invented sizes for another try; False when there is nothing to grow."""
        if self.attempt >= self.last_attempt:
            return False
        self.set_attempt(self.attempt + 1)
        return True

    def set_attempt(self, attempt: int) -> None:
        """Use the sizes of try number ``attempt`` (0: the first sizes)."""
        if attempt != self.attempt:
            self.attempt = min(attempt, self.last_attempt)
            self._feeds = None

    def reseed(self, seed: int) -> None:
        """Invent other values (same sizes) from ``seed``."""
        if seed != self.seed:
            self.seed = seed
            self._feeds = None

    def feeds(self) -> dict[str, Array]:
        if self._feeds is None:
            rng = np.random.default_rng(self.seed)
            feeds = dict(self.given)
            self.invented = {}
            for spec in self._missing:
                if spec.kind is not None:
                    hint = self._hints.get(spec.name)
                    feeds[spec.name], how = _invent(spec.kind, spec.name, hint, rng)
                    self.invented[spec.name] = Invented(
                        spec.name, spec.dtype, (), how, str(spec.kind)
                    )
                    continue
                shape = tuple(d.size * d.factor**self.attempt for d in self._dims[spec.name])
                size = int(np.prod(shape, dtype=object)) * max(spec.dtype.bits // 8, 1)
                if size > MAX_BYTES:
                    raise InputError(
                        f"inventing input {spec.name!r} of shape {shape} would take {size:,} "
                        f"bytes; give it (--input {spec.name}=FILE.npy) or a smaller shape",
                        spec.name,
                    )
                feeds[spec.name], how = _values(spec, shape, self._hints.get(spec.name), rng)
                self.invented[spec.name] = Invented(spec.name, spec.dtype, shape, how)
            self._feeds = feeds
        return self._feeds

    def describe(self) -> str:
        """What was invented, on one line."""
        self.feeds()
        return "; ".join(map(str, self.invented.values()))

    def story(self) -> str:
        """What was invented, said for an error message."""
        if self.given:
            given = ", ".join(self.given)
            return f"unirun invented the inputs not given (given: {given}): {self.describe()}"
        return f"the inputs were invented by unirun, since none were given: {self.describe()}"

    def sizes(self) -> str:
        """The sizes unirun chose, e.g. ``x 1x3x224x224``."""
        feeds = self.feeds()
        return ", ".join(f"{k} {'x'.join(map(str, feeds[k].shape))}" for k in self.sized)

    def fix(self, style: Style = "cli") -> str:
        """How to give real inputs instead, as command-line flags or Python arguments."""
        feeds = self.feeds()
        if style == "api":
            arrays = ", ".join(f"{k!r}: ..." for k in self.invented)
            dims = ", ".join(f"{k!r}: ({', '.join(self._template(k))})" for k in self.sized)
            sizes = f", or the sizes with shapes={{{dims}}}" if dims else ""
            return f"pass real inputs with sample={{{arrays}}}{sizes}"
        flags = [
            f"--input {k}={'VALUE' if feeds[k].size == 1 else 'FILE.npy'}" for k in self.invented
        ]
        flags += [f"--shape {k}={'x'.join(self._template(k))}" for k in self.sized]
        return "give real inputs: " + " ".join(flags)

    def _template(self, name: str) -> list[str]:
        """The input's shape with a letter for each size unirun chose: ``1, 3, H, W``."""
        letters = {"spatial": "HWV", "length": "LMK", "audio": "S", "depth": "D"}
        seen: dict[str, int] = defaultdict(int)
        out = []
        for dim in self._dims[name]:
            if dim.factor == 1:
                out.append(str(dim.size))
                continue
            pool = letters.get(dim.role, "X")
            out.append(pool[min(seen[dim.role], len(pool) - 1)])
            seen[dim.role] += 1
        return out


def rejected(
    exc: UnirunError, backend: str, invented: str, tried: Sequence[str], fix: str
) -> UnirunError:
    """``exc`` (an engine's refusal of invented inputs), of the same type, with what was
    invented (:meth:`InputPlan.story`) and how to give real inputs."""
    larger = f"; larger sizes failed too ({'; '.join(tried)})" if tried else ""
    message = f"{exc} [{invented}{larger}. If {backend} needs other values or sizes, {fix}]"
    try:
        error = type(exc)(message)
    except TypeError:
        error = InferenceError(message)
    error.__cause__ = exc
    return error


def run_first(model: Model, plan: InputPlan, style: Style = "cli") -> dict[str, Array]:
    """Run ``model`` once on ``plan``'s feeds. When the engine rejects invented inputs, retry
    with larger sizes; when it still refuses, raise the first refusal with what was invented."""
    first: tuple[InferenceError, str] | None = None
    tried: list[str] = []
    while True:
        try:
            return model.infer(plan.feeds())
        except InferenceError as exc:
            if not plan.invented:
                raise
            if first is None:
                first = (exc, plan.story())
            else:
                tried.append(plan.sizes())
            if not plan.grow():
                raise rejected(first[0], model.backend, first[1], tried, plan.fix(style)) from (
                    first[0]
                )
            log.info(
                "%s rejected the invented inputs (%s); trying larger sizes: %s",
                model.backend,
                str(exc).splitlines()[0][:200],
                plan.sizes(),
            )


# -- sizes ----------------------------------------------------------------------------------


def _choose_dims(
    specs: Iterable[TensorSpec], given: Mapping[str, Array], shapes: Mapping[str, ShapeRange]
) -> dict[str, list[_Dim]]:
    symbols: dict[str, _Dim] = {}
    for spec in specs:  # a size the caller's arrays fix holds for every input that shares it
        array = given.get(spec.name)
        if array is not None and spec.shape is not None and array.ndim == len(spec.shape):
            for dim, size in zip(spec.shape, array.shape, strict=True):
                if isinstance(dim, str) and dim not in ("?", ""):
                    symbols.setdefault(dim, _Dim(size))
    out: dict[str, list[_Dim]] = {}
    for spec in specs:
        if spec.name in given or spec.kind is not None:
            continue
        bounds = shapes.get(spec.name)
        if bounds is not None:
            out[spec.name] = [_Dim(d) for d in bounds.opt]
            continue
        if spec.shape is None:
            raise InputError(
                f"input {spec.name!r} has no declared rank, so unirun cannot invent it; give "
                f"it: --input {spec.name}=FILE.npy or --shape {spec.name}=DIMS (Python: "
                f"shapes={{{spec.name!r}: (...)}})",
                spec.name,
            )
        dims: list[_Dim] = []
        for axis, dim in enumerate(spec.shape):
            if isinstance(dim, int):
                dims.append(_Dim(dim))
                continue
            named = dim not in ("?", "")
            if named and dim in symbols:
                dims.append(symbols[dim])
                continue
            role = _role(spec, axis, dim if named else "")
            chosen = _Dim(*SIZES[role], role=role)
            if named:
                symbols[dim] = chosen
            dims.append(chosen)
        out[spec.name] = dims
    return out


def _role(spec: TensorSpec, axis: int, dim: str) -> Role:
    word = dim.lower()
    for role in ("batch", "spatial", "depth", "audio", "length"):
        if word and _WORDS[role].match(word):
            return role
    shape: tuple[Dim, ...] = spec.shape or ()
    rank = len(shape)
    name = spec.name.lower()
    if _STATE.search(name) or (rank == 3 and axis == 1 and isinstance(shape[0], int)):
        return "batch"  # recurrent state [layers, batch, hidden]: its free dims are the batch
    if axis == 0 and rank >= 2:
        return "batch"
    if rank == 4:
        nhwc = isinstance(shape[3], int) and shape[3] <= 4
        if axis == (3 if nhwc else 1):
            return "channels"
        return "spatial"
    if rank == 5:
        return "channels" if axis == 1 else "depth" if axis == 2 else "spatial"
    if _AUDIO_INPUT.match(name) and spec.dtype.is_float:
        return "audio"
    return "length"


# -- values ---------------------------------------------------------------------------------


def _values(
    spec: TensorSpec, shape: tuple[int, ...], hint: Hint | None, rng: np.random.Generator
) -> tuple[Array, str]:
    dtype, name = spec.dtype, spec.name.lower()
    single = int(np.prod(shape)) == 1
    if hint is not None and hint.categories and (dtype is DType.STRING or not dtype.is_float):
        known = hint.categories
        picks = np.empty(len(known), dtype=object if dtype is DType.STRING else dtype.numpy)
        picks[:] = known
        shown = ", ".join(map(repr, known[:4])) + (", …" if len(known) > 4 else "")
        return rng.choice(picks, shape), f"random categories the model's encoder knows ({shown})"
    if dtype is DType.STRING:
        return np.full(shape, "unirun", dtype=object), "the string 'unirun'"
    if hint is not None and hint.compared and single:
        value = hint.compared[0]
        shown = ", ".join(f"{v:g}" for v in dict.fromkeys(hint.compared))
        return (
            np.full(shape, value).astype(dtype.numpy),
            f"{value:g}: the graph compares it with {shown}",
        )
    if dtype is DType.BOOL:
        if "mask" in name:
            return np.ones(shape, bool), "all true (a mask)"
        return rng.random(shape) < 0.5, "random"
    if dtype.is_float or dtype.value.startswith("complex"):
        if single:
            return rng.uniform(0.5, 1.5, shape).astype(dtype.numpy), "uniform 0.5..1.5"
        return rng.standard_normal(shape).astype(dtype.numpy), "random normal"
    if "mask" in name:
        return np.ones(shape, dtype.numpy), "ones (a mask)"
    if "token_type" in name or "segment" in name:
        return np.zeros(shape, dtype.numpy), "zeros"
    if "position" in name and shape:
        positions = np.broadcast_to(np.arange(shape[-1]), shape)
        return positions.astype(dtype.numpy), "positions 0..n-1"
    if single and _RATE.match(name):
        return np.full(shape, 16000).astype(dtype.numpy), "16000, a sample rate"
    if hint is not None and hint.table:
        high = hint.table
        how = f"random 0..{high - 1}: indices into a {high}-row table (Gather)"
    elif dtype is DType.UINT8 and len(shape) >= 3:
        high, how = 256, "random 0..255 (an image)"
    else:
        high = 10 if dtype.bits >= 8 else 2 ** (dtype.bits - 1)
        how = f"random 0..{high - 1}"
    return rng.integers(0, high, shape).astype(dtype.numpy), how


def _invent(
    kind: ValueType, name: str, hint: Hint | None, rng: np.random.Generator
) -> tuple[Any, str]:
    """A value of ``kind`` (not a tensor at the top) and how it was made."""
    if isinstance(kind, TensorType):
        shape = tuple(d if isinstance(d, int) else 3 for d in kind.shape or (3,))
        return _values(TensorSpec(name, kind.dtype, kind.shape), shape, hint, rng)
    if isinstance(kind, OptionalType):
        value, how = _invent(kind.element, name, hint, rng)
        return value, f"present: {how}"
    if isinstance(kind, SequenceType):
        items = [_invent(kind.element, name, hint, rng) for _ in range(2)]
        return [v for v, _ in items], f"2 items, each {items[0][1]}"
    keys: list[Any] = [k for k in (hint.categories if hint else []) if _is_key(k, kind.key)]
    if not keys:
        keys = ["a", "b", "c"] if kind.key is DType.STRING else [0, 1, 2]
    keys = keys[:3] if len(keys) <= 8 else list(rng.choice(np.array(keys, dtype=object), 3))
    if isinstance(kind.value, TensorType):
        spec = TensorSpec(name, kind.value.dtype, ())
        values = [_values(spec, (), None, rng) for _ in keys]
        how = f"random {kind.value.dtype} ({values[0][1]})" if values else ""
        mapping = {k: v[()] for k, (v, _) in zip(keys, values, strict=True)}
    else:
        inner = [_invent(kind.value, name, None, rng) for _ in keys]
        how = inner[0][1] if inner else ""
        mapping = {k: v for k, (v, _) in zip(keys, inner, strict=True)}
    return mapping, f"keys {', '.join(map(repr, keys))} to {how}"


def _is_key(key: Any, dtype: DType) -> bool:
    return isinstance(key, str) if dtype is DType.STRING else isinstance(key, int)
