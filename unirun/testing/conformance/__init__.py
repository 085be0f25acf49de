"""The conformance suite every unirun backend plugin runs. Subclass it, name the backend, done::

    from unirun.testing.conformance import BackendConformance

    class TestMyEngineConformance(BackendConformance):
        backend = "myengine"

What the backend can do is read from its declared :class:`~unirun.Capabilities`; a class
attribute of the same name (``devices``, ``dtypes``, ``precisions``, ``dynamic_shapes``,
``thread_safety``) overrides it. Tests that need a device are generated once per device kind and
skip, saying why, where the backend or the device is unavailable; tests for a capability the
backend does not declare skip with that reason, or check that it is refused cleanly.

A standard test cannot be dropped or replaced silently: redefining one in a subclass is an error
unless the new definition carries ``pytest.mark.xfail(reason=...)``. The simpler way to record a
known failure is the ``xfail`` mapping, ``{"test_name": reason}`` or ``{"test_name[bfloat16]":
reason}`` for some parameters only; those xfails are strict, so a fixed failure is noticed.

Every standard test's docstring ends with a *Troubleshooting* paragraph: pytest prints it with
the failing source, and it says what a plugin usually gets wrong there. Golden outputs come from
the ``reference`` backend (ONNX's own ``onnx.reference`` evaluator).

The suite is composed of one mixin per topic, each in its own module, so that a failing test is
read in a short file: :mod:`~.contract` (the object, ``probe()``, discovery), :mod:`~.values`
(outputs, signature, dtypes), :mod:`~.precision`, :mod:`~.shapes` (dynamic shapes),
:mod:`~.errors` (bad inputs and typed errors), :mod:`~.artifacts` (artifacts and the compile
cache), :mod:`~.lifecycle` (threads and ``close()``), :mod:`~.ownership` (outputs owned by the
caller, NaN), :mod:`~.value_kinds` (sequences, maps, optionals) and :mod:`~.node_corpus` (the
ONNX node tests); :mod:`~.base` holds the class attributes, fixtures and helpers they share.
"""

from __future__ import annotations

from .._support import plugin_from_source
from .artifacts import ArtifactTests
from .base import MODELS, STANDARD_DTYPES, ConformanceBase, Engine, standard_tests
from .contract import ContractTests
from .errors import ErrorTests
from .lifecycle import LifecycleTests
from .node_corpus import CORE_NODE_TESTS, NodeCorpusTests
from .ownership import OwnershipTests
from .precision import PrecisionTests
from .shapes import ShapeTests
from .value_kinds import ValueKindTests
from .values import ValueTests

__all__ = [
    "CORE_NODE_TESTS",
    "MODELS",
    "STANDARD_DTYPES",
    "BackendConformance",
    "ConformanceBase",
    "Engine",
    "plugin_from_source",
]


# One line per topic. pytest runs the topics of the last line first, so the list reads from
# the last topic run (the ONNX node tests) up to the first (the contract); a new topic is a
# module with a ConformanceBase mixin and one line here.
class BackendConformance(
    NodeCorpusTests,
    ValueKindTests,
    OwnershipTests,
    LifecycleTests,
    ArtifactTests,
    ErrorTests,
    ShapeTests,
    PrecisionTests,
    ValueTests,
    ContractTests,
):
    """Subclass as ``Test<Engine>Conformance`` and set ``backend``; see the module docstring."""


BackendConformance._standard = standard_tests(BackendConformance)
