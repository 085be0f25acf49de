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

The plan, its retries and the error that says what was invented are here; the sizes by role
are chosen in :mod:`unirun._input_sizes`, the values in :mod:`unirun._input_values`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ._graph_hints import mine
from ._input_sizes import SIZES as SIZES
from ._input_sizes import Role as Role
from ._input_sizes import choose_dims
from ._input_values import invent, tensor_values
from .dtypes import DType
from .errors import InferenceError, InputError, UnirunError
from .options import ShapeRange
from .tensor import TensorSpec

if TYPE_CHECKING:
    from .model import Model

__all__ = ["Given", "InputPlan", "Invented", "Value", "rejected", "run_first"]

log = logging.getLogger("unirun")

Array = np.ndarray[Any, Any]
Style = Literal["cli", "api"]

RETRIES = 2
#: The most memory one invented input may take (a --shape typo must not exhaust the machine).
MAX_BYTES = 4 << 30


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
        self._dims = choose_dims(self.specs, self.given, shapes or {})
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
                    feeds[spec.name], how = invent(spec.kind, spec.name, hint, rng)
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
                feeds[spec.name], how = tensor_values(spec, shape, self._hints.get(spec.name), rng)
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
