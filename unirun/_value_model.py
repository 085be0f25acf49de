"""The :class:`~unirun.model.Model` of a model with sequence, map or optional inputs/outputs.

``Model(...)`` builds a :class:`ValueModel` when the executable reports such a value (see
``Model.__new__``): the same model, whose ``infer`` checks every feed with
:mod:`unirun._value_io` and hands values back as lists, dicts and None. Models of tensors only
never come here, so their hot path is unchanged. It relies on these members of ``Model``:
``backend``, ``inputs``, ``outputs``, ``options``, ``_run``, ``_mapper``, ``_closed``,
``_closed_error()``, ``_answers`` (per output: ``name``, ``spec``, ``seen``) and
``_check_answer(answer, value, feeds)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._calls import map_engine_error
from ._value_io import InputCheck, accept, feed_parts, input_check, shares_memory
from .errors import InferenceError, InputError, OptionsError
from .model import Model

__all__ = ["ValueModel"]


class ValueModel(Model):
    """A :class:`~unirun.model.Model` with inputs or outputs that are not plain tensors.

    Feeds: a sequence is a list (or tuple) of arrays, a map a dict, an absent optional None (an
    optional input may also be left out of a dict of feeds). For a model with one input,
    anything but a dict is that input's value (so a list is the sequence itself). Outputs come
    back in the same forms, and the caller owns them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        shapes = self.options.shapes
        self._checks: tuple[InputCheck, ...] = tuple(
            input_check(spec, shapes.get(spec.name)) for spec in self.inputs
        )
        self._check_names = {check.name for check in self._checks}

    def infer(self, inputs: Any, *, outputs: str = "numpy") -> dict[str, Any]:
        """Run the model; see :meth:`Model.infer` and the class docstring for the values.
        Outputs come back in host memory only (``outputs="numpy"``)."""
        if outputs != "numpy":
            raise OptionsError(
                f"outputs={outputs!r}: this model has inputs or outputs that are not tensors "
                "(sequences, maps or optionals), which come back in host memory only; use "
                "outputs='numpy'"
            )
        if self._closed:
            raise self._closed_error()
        feeds = self._value_feeds(inputs)
        try:
            results = self._run(feeds)
        except Exception as exc:
            error = map_engine_error(self.backend, self._mapper, "run", exc)
            if error is exc:
                raise
            raise error from exc
        answers = self._answers
        if len(results) != len(answers):
            raise InferenceError(
                f"backend {self.backend!r} returned {len(results)} outputs for {len(answers)} "
                "declared ones; this is a plugin bug"
            )
        arrays, containers = feed_parts(feeds)
        answered: dict[str, Any] = {}
        for answer, value in zip(answers, results, strict=True):
            if answer.spec.kind is not None:
                value = accept(answer.spec, value, arrays, containers, self.backend)
            else:
                if shares_memory(value, arrays):
                    value = value.copy()
                if value.shape not in answer.seen:
                    self._check_answer(answer, value, feeds)
            answered[answer.name] = value
        return answered

    __call__ = infer

    def _value_feeds(self, inputs: Any) -> dict[str, Any]:
        checks = self._checks
        if isinstance(inputs, Mapping):
            feeds: dict[str, Any] = {}
            for check in checks:
                if check.name in inputs:
                    feeds[check.name] = check.check(inputs[check.name])
                elif check.optional:
                    feeds[check.name] = None
                else:
                    raise self._missing(check, inputs)
            unknown = [k for k in inputs if k not in self._check_names]
            if unknown:
                raise InputError(
                    f"unknown input name(s) {', '.join(map(repr, unknown))}; the model's inputs "
                    f"are {', '.join(map(str, self.inputs))}",
                    str(unknown[0]),
                )
            return feeds
        if len(checks) == 1:
            if self.inputs[0].kind is None and _one_array_in_a_list(inputs):
                inputs = inputs[0]  # [x] for a model of one tensor input, as Model takes it
            return {checks[0].name: checks[0].check(inputs)}
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != len(checks):
                raise InputError(
                    f"got {len(inputs)} positional inputs, but the model takes {len(checks)}: "
                    f"{', '.join(map(str, self.inputs))}"
                )
            return {c.name: c.check(v) for c, v in zip(checks, inputs, strict=True)}
        raise InputError(
            f"the model takes {len(checks)} inputs ({', '.join(map(str, self.inputs))}); pass a "
            "dict name -> value or a sequence in that order"
        )

    def _missing(self, check: InputCheck, inputs: Mapping[Any, Any]) -> InputError:
        unknown = [k for k in inputs if k not in self._check_names]
        extra = f"; unknown names given: {', '.join(map(repr, unknown))}" if unknown else ""
        return InputError(f"missing input {check.name!r} ({check.expected}){extra}", check.name)


def _one_array_in_a_list(inputs: Any) -> bool:
    if not isinstance(inputs, (list, tuple)) or len(inputs) != 1:
        return False
    first = inputs[0]
    return hasattr(first, "__array__") or hasattr(first, "__dlpack__")
