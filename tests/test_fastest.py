"""backend="fastest": candidates that fail are skipped with the reason, the measurements stay on
the model, the choice is keyed on every option and survives the process. The candidates are
the installed engines plus small backends registered here (a subprocess sees only the former)."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from pydantic import BaseModel, ConfigDict

import unirun
from unirun import CompileError, OptionsError, UnirunError
from unirun._reference import ReferenceBackend
from unirun.fastest import Selection
from unirun.testing import pooled_cnn, streaming_vad


class CandidateOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    spin: int = 0


class Candidate(ReferenceBackend):
    """The reference evaluator, made a candidate for ``fastest`` (it never is by itself)."""

    name = "refcandidate"
    options_model = CandidateOptions
    capabilities = dataclasses.replace(ReferenceBackend.capabilities, priority={"cpu": 1})


class BrokenCompile(Candidate):
    name = "brokencompile"
    options_model = None

    def compile(self, model: Any, target: Any) -> Any:
        raise CompileError("this engine cannot build anything")


class _Crashing:
    def __init__(self, inner: Any) -> None:
        self.inputs, self.outputs = inner.inputs, inner.outputs

    def infer(self, feeds: Mapping[str, np.ndarray[Any, Any]]) -> Sequence[Any]:
        raise RuntimeError("kernel launch failed")

    def close(self) -> None:
        pass


class BrokenRun(Candidate):
    name = "brokenrun"

    def load(self, request: Any) -> Any:
        return _Crashing(super().load(request))


@pytest.fixture
def registered() -> Iterator[list[str]]:
    backends = [Candidate(), BrokenCompile(), BrokenRun()]
    for backend in backends:
        unirun.register_backend(backend)  # type: ignore[arg-type]
    yield [b.name for b in backends]
    for backend in backends:
        unirun.unregister_backend(backend.name)


def _selection(model: unirun.Model) -> Selection:
    selection = getattr(model, "selection", None)
    assert isinstance(selection, Selection)
    return selection


@pytest.mark.usefixtures("registered")
def test_a_backend_that_fails_to_compile_or_run_is_skipped_with_its_reason(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.WARNING, logger="unirun")
    with unirun.load(streaming_vad(), backend="fastest", device="cpu", cache=tmp_path) as model:
        selection = _selection(model)
        assert model.backend == selection.backend not in ("brokencompile", "brokenrun")
        skipped = selection.skipped
        assert set(skipped) == {"brokencompile", "brokenrun"}
        assert skipped["brokencompile"] == "CompileError: this engine cannot build anything"
        # a failure at run time on invented inputs says so, and how to pass real ones
        assert "kernel launch failed" in skipped["brokenrun"]
        assert (
            "pass real inputs with sample={'input': ..., 'state': ..., 'sr': ...}"
            in (skipped["brokenrun"])
        )
        measured = set(selection.seconds)
        assert "refcandidate" in measured and selection.backend in measured
        assert all(s > 0 for s in selection.seconds.values()) and not selection.reused
        assert selection.inputs.startswith("invented: input float32[1, 256]")
        out = model(
            {
                "input": np.zeros((1, 512), np.float32),
                "sr": np.array(16000),
                "state": np.zeros((2, 1, 32), np.float32),
            }
        )
        assert out["stateN"].shape == (2, 1, 32)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith("backend='fastest' skips brokencompile: CompileError") for m in warned)
    assert any(m.startswith("backend='fastest' skips brokenrun: InferenceError") for m in warned)


@pytest.mark.usefixtures("registered")
def test_the_choice_is_kept_per_options_and_reused_without_measuring(tmp_path: Path) -> None:
    model = pooled_cnn()
    with unirun.load(model, backend="fastest", device="cpu", cache=tmp_path) as first:
        chosen = _selection(first)
    assert not chosen.reused and len(list((tmp_path / "choices").glob("*.json"))) == 1
    with unirun.load(model, backend="fastest", device="cpu", cache=tmp_path) as again:
        reused = _selection(again)
    assert reused.reused and reused.backend == chosen.backend == again.backend
    assert reused.seconds == pytest.approx(chosen.seconds)
    # other plugin options are another question: measured anew, kept under another key; the
    # backends that do not take them are skipped, saying which keys they take
    with unirun.load(
        model, backend="fastest", device="cpu", cache=tmp_path, options={"spin": 1}
    ) as other:
        selection = _selection(other)
    assert not selection.reused and other.backend == "refcandidate"
    assert "takes no options" in selection.skipped["brokencompile"]
    assert len(list((tmp_path / "choices").glob("*.json"))) == 2


@pytest.mark.usefixtures("registered")
def test_a_sample_is_what_gets_timed_and_is_part_of_the_key(tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 48)).astype(np.float32)
    with unirun.load(
        pooled_cnn(), backend="fastest", device="cpu", cache=tmp_path, sample={"x": x}
    ) as model:
        assert _selection(model).inputs == "given: x"
    with unirun.load(pooled_cnn(), backend="fastest", device="cpu", cache=tmp_path) as model:
        assert not _selection(model).reused  # invented inputs are another measurement
    with pytest.raises(OptionsError, match="sample= is used only by backend='fastest'"):
        unirun.load(pooled_cnn(), backend="reference", sample={"x": x})


@pytest.mark.usefixtures("registered")
def test_declared_shapes_size_the_invented_sample(tmp_path: Path) -> None:
    bounds = ((1, 3, 32, 32), (1, 3, 64, 48), (1, 3, 512, 512))
    with unirun.load(
        pooled_cnn(), backend="fastest", device="cpu", cache=tmp_path, shapes={"x": bounds}
    ) as model:
        assert _selection(model).inputs == "invented: x float32[1, 3, 64, 48] (random normal)"


def test_shapes_naming_an_unknown_input_is_the_callers_error() -> None:
    with pytest.raises(OptionsError, match="shapes names input 'nope'"):
        unirun.load(pooled_cnn(), backend="fastest", shapes={"nope": (1, 3, 64, 64)})
    with pytest.raises(OptionsError, match="precision"):
        unirun.load(pooled_cnn(), backend="fastest", precision="fp8")


@pytest.mark.usefixtures("registered")
def test_when_nothing_works_every_candidate_gives_its_reason() -> None:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example", name="frob")],
        "custom",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    custom = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)],
    )
    with pytest.raises(UnirunError) as caught:
        unirun.load(custom, backend="fastest", device="cpu", cache=False)
    message = str(caught.value)
    assert message.startswith("backend='fastest' found no backend that runs this model on cpu")
    for name in unirun._select.candidate_names(unirun.Device("cpu")):
        assert f"{name}: " in message
    assert "brokencompile: CompileError: this engine cannot build anything" in message


@pytest.mark.slow
def test_a_second_process_reuses_the_choice(tmp_path: Path) -> None:
    path = tmp_path / "vad.onnx"
    onnx.save(streaming_vad(), str(path))
    script = textwrap.dedent(f"""
        import json, numpy as np, unirun
        sample = {{"input": np.zeros((1, 512), np.float32), "sr": np.array(8000),
                  "state": np.zeros((2, 1, 32), np.float32)}}
        with unirun.load({str(path)!r}, backend="fastest", device="cpu",
                         cache={str(tmp_path / "cache")!r}, sample=sample) as m:
            s = m.selection
            print(json.dumps([s.backend, s.reused, sorted(s.seconds), s.inputs]))
    """)
    runs = [
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
        for _ in range(2)
    ]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr + runs[1].stderr
    (backend, reused, measured, inputs), again = (json.loads(r.stdout) for r in runs)
    assert not reused and inputs == "given: input, state, sr"
    assert again == [backend, True, measured, inputs]


@pytest.mark.usefixtures("registered")
def test_a_damaged_stored_choice_is_measured_again(tmp_path: Path) -> None:
    with unirun.load(pooled_cnn(), backend="fastest", device="cpu", cache=tmp_path):
        pass
    (stored,) = (tmp_path / "choices").glob("*.json")
    record = json.loads(stored.read_text(encoding="utf-8"))
    record["candidates"][0]["seconds"] = "fast"
    stored.write_text(json.dumps(record))
    with unirun.load(pooled_cnn(), backend="fastest", device="cpu", cache=tmp_path) as model:
        assert not _selection(model).reused
    stored.write_text("{not json")
    with unirun.load(pooled_cnn(), backend="fastest", device="cpu", cache=tmp_path) as model:
        assert not _selection(model).reused
    assert (
        json.loads(stored.read_text(encoding="utf-8"))["backend"] == model.backend
    )  # written again
