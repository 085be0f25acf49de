"""Per-call overhead on a tiny model: unirun's ``model(...)`` against the engine's own call.

    python -m bench.hot_path [--quick]

The model adds a constant to a 16-element float32 vector, so the engine's work is negligible and
what is left is the cost of the call itself. For each engine, in one process, interleaved:

* ``native``: ONNX Runtime's ``InferenceSession.run(None, {"x": x})`` and the compiled ``run``
  under it (``InferenceSession._sess.run``, which the plugin calls: unirun's own checks replace
  the Python wrapper's, see ``unirun_onnxruntime._run``); OpenVINO's
  ``InferRequest.infer({0: x}, share_inputs=True)`` (outputs copied, as unirun returns them) and
  its lowest-level path (``set_input_tensor`` with a shared ``ov.Tensor``, ``infer()``, copy);
* ``executable``: the plugin's own ``infer`` under the core (no feed handling), so the cost of
  the core's feed checks shows as the gap between it and ``model(...)``;
* ``model(...)`` with the inputs as a dict, a list, and a single array.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from bench._table import Section, Table
from bench._timing import Stats, compare_samples

TARGET = "`model(...)` / native ≤ 1.10 on this model, on any machine (issue 15)."


def add_model() -> Any:
    """``y = x + c`` on float32[16]."""
    from onnx import TensorProto, helper, numpy_helper

    c = numpy_helper.from_array(np.arange(16, dtype=np.float32), "c")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "c"], ["y"])],
        "add16",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [16])],
        [c],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _unirun_candidates(model: Any, x: np.ndarray[Any, Any]) -> dict[str, Callable[[], object]]:
    candidates: dict[str, Callable[[], object]] = {}
    # The plugin's executable sits behind a private attribute; if a refactor renames it the
    # row is left out rather than the benchmark failing.
    executable = getattr(model, "_executable", None)
    if executable is not None:
        # A CONTEXTS plugin (OpenVINO) runs on contexts: time one context's infer.
        raw = executable.create_context() if hasattr(executable, "create_context") else executable
        candidates["executable.infer(dict)"] = functools.partial(raw.infer, {"x": x})
    candidates["model(dict)"] = functools.partial(model, {"x": x})
    candidates["model(list)"] = functools.partial(model, [x])
    candidates["model(array)"] = functools.partial(model, x)
    return candidates


def _onnxruntime(proto: Any, x: np.ndarray[Any, Any], cache: str) -> tuple[str, dict[str, Any]]:
    import onnxruntime as ort

    import unirun

    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    model = unirun.load(proto, backend="onnxruntime", device="cpu", cache=cache)
    candidates = {"native: InferenceSession.run": functools.partial(session.run, None, {"x": x})}
    compiled = getattr(getattr(session, "_sess", None), "run", None)
    if compiled is not None:  # a private attribute: left out if an ONNX Runtime lacks it
        names = [meta.name for meta in session.get_outputs()]
        candidates["native: compiled run, no wrapper"] = functools.partial(
            compiled, names, {"x": x}, None
        )
    candidates.update(_unirun_candidates(model, x))
    return f"ONNX Runtime {ort.__version__}", {"candidates": candidates, "close": model.close}


def _openvino(proto: Any, x: np.ndarray[Any, Any], cache: str) -> tuple[str, dict[str, Any]]:
    import openvino as ov

    import unirun

    core = ov.Core()
    props = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    compiled = core.compile_model(core.read_model(proto.SerializeToString()), "CPU", props)
    request = compiled.create_infer_request()

    def tensor_api() -> object:
        request.set_input_tensor(0, ov.Tensor(x, shared_memory=True))
        request.infer()
        return request.get_output_tensor(0).data.copy()

    model = unirun.load(proto, backend="openvino", device="cpu", cache=cache)
    candidates: dict[str, Callable[[], object]] = {
        "native: InferRequest.infer": functools.partial(request.infer, {0: x}, share_inputs=True),
        "native: tensor API": tensor_api,
    }
    candidates.update(_unirun_candidates(model, x))
    return f"OpenVINO {ov.__version__}", {"candidates": candidates, "close": model.close}


ENGINES: dict[
    str, tuple[str, Callable[[Any, np.ndarray[Any, Any]], tuple[str, dict[str, Any]]]]
] = {
    "onnxruntime": ("onnxruntime", _onnxruntime),
    "openvino": ("openvino", _openvino),
}


def run(quick: bool = False) -> Section:
    with tempfile.TemporaryDirectory(prefix="unirun-bench-") as cache:
        return _run(quick, cache)


def _run(quick: bool, cache: str) -> Section:
    budget, rounds = (0.3, 3) if quick else (6.0, 41)
    proto = add_model()
    x = np.linspace(-1, 1, 16, dtype=np.float32)
    section = Section(
        "hot-path",
        "Per-call overhead on a tiny model",
        "A 16-element float32 `Add` (`y = x + c`): the engine's work is negligible, so this "
        "is the cost of the call itself. Per engine, in one process, the candidates alternate "
        f"in {rounds} short rounds of equal call counts; each cell is the median per-call time "
        "in µs with the interquartile range of the rounds. The ratio is the median of the "
        "per-round ratios to the first (native) row, each taken between calls made moments "
        "apart, so it is steadier than the times when the machine is busy. `executable.infer` "
        "is the plugin's own call under the core: the gap between it and `model(...)` is the "
        "core's feed handling. The ONNX Runtime plugin calls the session's compiled `run` "
        "without the Python wrapper of `InferenceSession.run`, whose checks unirun's core "
        "makes itself: that row shows the wrapper's cost.",
        target=TARGET,
    )
    for module, build in ENGINES.values():
        if importlib.util.find_spec(module) is None:
            section.notes.append(f"{module} is not installed: no row for it.")
            continue
        label, setup = build(proto, x, cache)
        try:
            samples = compare_samples(setup["candidates"], budget_s=budget, rounds=rounds)
        finally:
            setup["close"]()
        native = samples[next(iter(samples))]
        table = Table(
            ["call", "µs per call (IQR)", "ratio to native (IQR)", "difference µs"],
            caption=f"**{label}**",
        )
        for name, values in samples.items():
            times = Stats.of(values)
            ratios = Stats.of([ours / theirs for ours, theirs in zip(values, native, strict=True)])
            difference = (times.median - Stats.of(native).median) * 1e6
            table.add(name, times.us(), ratios.times(), f"{difference:+.2f}")
        section.tables.append(table)
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    print(run(parser.parse_args().quick).markdown())


if __name__ == "__main__":
    main()
