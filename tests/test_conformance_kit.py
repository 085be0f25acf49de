"""The conformance kit itself: it refuses silently dropped tests, and it fails a buggy backend
on exactly the tests its bugs break."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

import unirun
from unirun import _registry
from unirun._reference import ReferenceBackend
from unirun.testing import models
from unirun.testing.conformance import BackendConformance, ConformanceBase, plugin_from_source
from unirun.testing.conformance._stand_in import versioned
from unirun.testing.conformance.base import Params, standard_tests

TEMPLATE = Path(__file__).resolve().parents[1] / "plugins" / "_template"


def test_a_redefined_standard_test_is_refused() -> None:
    with pytest.raises(TypeError, match="test_close"):

        class TestSneaky(BackendConformance):
            backend = "reference"

            def test_close(self) -> None:  # type: ignore[override]
                pass


def test_a_dropped_standard_test_is_refused() -> None:
    with pytest.raises(TypeError, match="test_signature"):

        class TestDropped(BackendConformance):
            backend = "reference"
            test_signature = None  # type: ignore[assignment]


def test_a_redefinition_marked_xfail_with_a_reason_is_allowed() -> None:
    class Allowed(BackendConformance):
        backend = "reference"

        @pytest.mark.xfail(reason="the engine cannot close", strict=True)
        def test_close(self) -> None:  # type: ignore[override]
            raise AssertionError

    assert Allowed.test_close is not BackendConformance.test_close


def test_xfail_entries_must_name_a_standard_test_and_give_a_reason() -> None:
    with pytest.raises(TypeError, match="not a standard test"):

        class TestTypo(BackendConformance):
            backend = "reference"
            xfail: ClassVar[dict[str, str]] = {"test_clsoe": "typo"}

    with pytest.raises(TypeError, match="needs a reason"):

        class TestNoReason(BackendConformance):
            backend = "reference"
            xfail: ClassVar[dict[str, str]] = {"test_close": " "}


def test_nan_swallowing_names_a_case_and_gives_a_reason() -> None:
    with pytest.raises(TypeError, match="the cases are"):

        class TestTypo(BackendConformance):
            backend = "reference"
            nan_swallowing: ClassVar[dict[str, str]] = {"ReLU": "typo"}

    with pytest.raises(TypeError, match="needs a reason"):

        class TestNoReason(BackendConformance):
            backend = "reference"
            nan_swallowing: ClassVar[dict[str, str]] = {"Relu": ""}


def test_a_test_class_must_name_its_backend() -> None:
    with pytest.raises(TypeError, match="must set `backend`"):

        class TestNameless(BackendConformance):
            pass


def test_every_topic_contributes_its_tests_and_parameters() -> None:
    """The composed suite is the union of its topics: each standard test is defined by exactly
    one topic module, and the parameters of each topic reach the generation."""
    owners = {fn.__module__.rsplit(".", 1)[-1] for fn in BackendConformance._standard.values()}
    assert owners == {
        "contract",
        "values",
        "precision",
        "shapes",
        "errors",
        "artifacts",
        "lifecycle",
        "ownership",
        "value_kinds",
        "node_corpus",
    }
    assert len(BackendConformance._standard) == 33
    params = BackendConformance._parameters()
    assert {"model_name", "dtype", "precision", "bad_input", "tampering", "nan_case"} <= set(params)
    assert "value_kind" in params
    assert "node_test" in params


def test_a_new_topic_is_a_mixin_and_one_line() -> None:
    class ExtraTests(ConformanceBase):
        _params: ClassVar[Mapping[str, Params]] = {"flavour": ("sweet", "sour")}

        def test_flavour(self, engine: object, flavour: str) -> None:
            """Troubleshooting: none."""

    class Extended(ExtraTests, BackendConformance):
        pass

    tests = standard_tests(Extended)
    assert tests["test_flavour"] is ExtraTests.test_flavour
    assert set(BackendConformance._standard) < set(tests)
    assert Extended._parameters()["flavour"] == ("sweet", "sour")


def test_two_topics_defining_one_test_are_refused() -> None:
    class One(ConformanceBase):
        def test_same(self) -> None:
            pass

    class Other(ConformanceBase):
        def test_same(self) -> None:
            pass

    class Both(One, Other):
        pass

    with pytest.raises(TypeError, match="One and Other both define test_same"):
        standard_tests(Both)


def _built_by(backend: str) -> tuple[str, str | None]:
    manifest = unirun.compile(models.mlp(), backend=backend, cache=False).manifest
    return manifest.plugin_version, manifest.runtime_version


def test_a_re_versioned_backend_is_registered_and_undone() -> None:
    """The cache test's seam: the backend under other versions, through register_backend, and
    the installed plugin back afterwards, also when the block fails."""
    before = _built_by("reference")
    with versioned("reference", None, plugin="999.0.0", engine="999.0.0-engine"):
        assert _built_by("reference") == ("999.0.0", "999.0.0-engine")

    def failing() -> None:
        with versioned("reference", None, plugin="999.0.0"):
            assert _built_by("reference") == ("999.0.0", before[1])
            raise RuntimeError("a test failed inside")

    with pytest.raises(RuntimeError):
        failing()
    assert _built_by("reference") == before
    info = next(i for i in unirun.backends() if i.name == "reference")
    assert info.plugin_version == unirun.__version__  # the distribution's entry point again


def test_a_re_versioned_in_process_backend_comes_back() -> None:
    class InProcess(ReferenceBackend):
        name = "inprocess"

    original: Any = InProcess()  # a Backend (its options_model is the literal None)
    unirun.register_backend(original)
    try:
        with versioned("inprocess", None, plugin="2.0"):
            assert _built_by("inprocess")[0] == "2.0"
        assert _registry.backend_object("inprocess") is original
        assert _built_by("inprocess")[0] == unirun.__version__
    finally:
        unirun.unregister_backend("inprocess")


def test_plugin_from_source_is_undone_afterwards() -> None:
    assert "template" not in _registry._all_entries()
    with plugin_from_source(TEMPLATE):
        assert "template" in _registry._all_entries()
        entry = _registry._all_entries()["template"]
        assert (entry.dist, entry.dist_version) == ("unirun-template", "0.1.0")
    assert "template" not in _registry._all_entries()


BUGGY = '''
import ml_dtypes
import numpy as np

import unirun
from unirun._reference import ReferenceBackend, ReferenceExecutable
from unirun.errors import UnsupportedModelError
from unirun.testing.conformance import BackendConformance


class ReusedBuffers(ReferenceExecutable):
    """Bugs: writes every result into the previous call's arrays; bfloat16 comes back as
    float32."""

    _last = None

    def infer(self, feeds):
        results = [
            r.astype(np.float32) if r.dtype == ml_dtypes.bfloat16 else r
            for r in super().infer(feeds)
        ]
        last = self._last
        if last is not None and [(a.shape, a.dtype) for a in last] == [
            (r.shape, r.dtype) for r in results
        ]:
            for a, r in zip(last, results):
                a[...] = r
            return last
        self._last = [np.array(r) for r in results]
        return self._last


class BuggyBackend(ReferenceBackend):
    name = "buggy"

    def compile(self, model, request):
        try:
            return super().compile(model, request)
        except UnsupportedModelError as exc:  # bug: the engine's error is not mapped
            raise RuntimeError(str(exc)) from None

    def load(self, request):
        base = super().load(request)
        executable = ReusedBuffers.__new__(ReusedBuffers)
        executable.__dict__.update(base.__dict__)
        return executable


unirun.register_backend(BuggyBackend(), replace=True)


class TestBuggyConformance(BackendConformance):
    backend = "buggy"
'''


@pytest.mark.slow
def test_a_buggy_backend_fails_the_tests_its_bugs_break(tmp_path: Path) -> None:
    (tmp_path / "test_buggy.py").write_text(textwrap.dedent(BUGGY))
    report = tmp_path / "report.xml"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(tmp_path / "test_buggy.py"),
            "-p",
            "no:cacheprovider",
            "-q",
            f"--junitxml={report}",
            "-W",
            "error",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    cases = ET.parse(report).getroot().iter("testcase")
    outcome = {
        case.get("name"): (
            "failed"
            if case.find("failure") is not None or case.find("error") is not None
            else "skipped"
            if case.find("skipped") is not None
            else "passed"
        )
        for case in cases
    }
    failed = {name for name, state in outcome.items() if state == "failed"}
    assert failed == {
        "test_discovered_through_entry_point",  # registered in-process, not an entry point
        "test_dtype_round_trip[bfloat16-cpu]",
        "test_outputs_and_inputs_are_not_shared[cpu]",
        "test_outputs_do_not_alias_inputs[cpu]",  # its reused buffers change earlier outputs
        "test_unsupported_operator[cpu]",
        # its infer treats every result as an array: sequence/optional outputs break
        "test_value_kind[optional-cpu]",
        "test_value_kind[sequence-cpu]",
        "test_value_kinds_survive_an_artifact[cpu]",
        "test_zipmap_classifier[cpu]",
    }, failed
    assert all(
        outcome[f"test_outputs_match_reference[{m}-cpu]"] == "passed"
        for m in ("conv_net", "mlp", "matmul_symbolic", "embedding", "multi_io")
    )
