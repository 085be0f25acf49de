"""Cache hits: from ``unirun.load(model)`` on an already-cached model to the first result.

    python -m bench.cached_load [--quick] [--rounds N] [--large-mb MB]

Two models, generated in a temporary directory: a small CNN, and an MLP whose ~150 MB of
weights live in an external data file. Per engine, each sample is a fresh process that imports
numpy and the engine (timed as "imports"), then times the path to the first result:

* unirun: ``unirun.load(path, backend=..., device="cpu")`` (a cache hit: the cache was filled
  beforehand) and ``model(feeds)``;
* ONNX Runtime: ``InferenceSession(path)`` and ``run``;
* OpenVINO: ``Core()``, ``compile_model(path)`` and ``infer`` (read and compile the ONNX file),
  and ``Core()``, ``import_model(blob)`` and ``infer`` (a blob exported beforehand: what a
  cache hit can at best be); the properties are those unirun's artifact records;
* reference: ``onnx.reference.ReferenceEvaluator(path)`` and ``run``.

The processes alternate. Then one more process runs unirun's cache hit under ``cProfile`` and
splits it into the public steps it goes through (reading and hashing the source, finding the
backend, opening and verifying the cached artifact, the engine's load, the first run).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._table import Section, Table
from bench._timing import Stats, child_env, interleave, run_json

ENGINES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "reference": "onnx"}

#: The steps of a cache hit, by the public function that does each one (file suffix, name).
STEPS: dict[str, tuple[tuple[str, str], ...]] = {
    "read + hash source": (("unirun/source.py", "from_source"),),
    "find backend": (("unirun/_select.py", "select"),),
    "open + verify artifact": (("unirun/artifact.py", "open"),),
    "engine load": (
        ("unirun_onnxruntime/backend.py", "load"),
        ("unirun_openvino/backend.py", "load"),
        ("unirun/_reference.py", "load"),
    ),
    "first run": (("unirun/model.py", "infer"),),
}


# -- the measured child processes (each runs in a fresh interpreter) ---------------------------


def child(kind: str, engine: str, work: str, model: str, profile: bool = False) -> None:
    """Print, as JSON, the seconds a fresh process spends importing and reaching a result."""
    import time

    start = time.perf_counter()
    import numpy as np

    importlib.import_module(ENGINES[engine])
    if kind == "unirun":
        import unirun
    imported = time.perf_counter()
    with np.load(Path(work) / f"{model}.feeds.npz") as data:
        feeds = {name: data[name] for name in data.files}
    path = str(Path(work) / f"{model}.onnx")
    run = _NATIVE[kind] if kind != "unirun" else None
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    begin = time.perf_counter()
    if run is not None:
        run(engine, path, work, model, feeds)
        status = "native"
    else:
        loaded = unirun.load(path, backend=engine, device="cpu")
        loaded(feeds)
        status = loaded.cache_status
    end = time.perf_counter()
    result: dict[str, Any] = {"imports": imported - start, "first": end - begin, "status": status}
    if profiler is not None:
        profiler.disable()
        result["steps"] = _steps(profiler)
    print(json.dumps(result))


def _steps(profiler: Any) -> dict[str, float]:
    import pstats

    stats: Any = pstats.Stats(profiler).stats  # {(file, line, name): (cc, nc, tt, ct, callers)}
    steps: dict[str, float] = {}
    for step, functions in STEPS.items():
        steps[step] = sum(
            ct
            for (file, _, name), (_, _, _, ct, _) in stats.items()
            if any(file.replace("\\", "/").endswith(s) and name == n for s, n in functions)
        )
    # sha256 time by who hashed: the source's reader or the artifact's verifier.
    for step, caller in (
        ("sha256 of source", "unirun/source.py"),
        ("sha256 of artifact", "unirun/artifact.py"),
    ):
        steps[step] = sum(
            tt
            for (_, _, name), (_, _, _, _, callers) in stats.items()
            if "_hashlib" in name
            for (file, _, _), (_, _, tt, _) in callers.items()
            if file.replace("\\", "/").endswith(caller)
        )
    # cProfile counts a recursive function's cumulative time once, at its outermost call.
    steps["of which imports"] = sum(
        ct for (_, _, name), (_, _, _, ct, _) in stats.items() if name == "_find_and_load"
    )
    return steps


def _ort(engine: str, path: str, work: str, model: str, feeds: dict[str, Any]) -> None:
    import onnxruntime as ort

    ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feeds)


def _ov_props(work: str, model: str) -> dict[str, Any]:
    return dict(json.loads((Path(work) / f"{model}.ov.json").read_text(encoding="utf-8")))


def _ov_compile(engine: str, path: str, work: str, model: str, feeds: dict[str, Any]) -> None:
    import openvino as ov

    compiled = ov.Core().compile_model(path, "CPU", _ov_props(work, model))
    compiled.create_infer_request().infer(list(feeds.values()))


def _ov_import(engine: str, path: str, work: str, model: str, feeds: dict[str, Any]) -> None:
    import openvino as ov

    blob = (Path(work) / f"{model}.blob").read_bytes()
    compiled = ov.Core().import_model(blob, "CPU", _ov_props(work, model))
    compiled.create_infer_request().infer(list(feeds.values()))


def _reference(engine: str, path: str, work: str, model: str, feeds: dict[str, Any]) -> None:
    from onnx.reference import ReferenceEvaluator

    ReferenceEvaluator(path).run(None, feeds)


_NATIVE: dict[str, Callable[[str, str, str, str, dict[str, Any]], None]] = {
    "InferenceSession": _ort,
    "compile_model": _ov_compile,
    "import_model": _ov_import,
    "ReferenceEvaluator": _reference,
}
NATIVE_OF = {
    "onnxruntime": ("InferenceSession",),
    "openvino": ("compile_model", "import_model"),
    "reference": ("ReferenceEvaluator",),
}
#: The native path a cache hit is compared with: the engine's fastest way to a loaded model.
BASELINE = {
    "onnxruntime": "InferenceSession",
    "openvino": "import_model",
    "reference": "ReferenceEvaluator",
}
EXTRA_STEPS = ("sha256 of source", "sha256 of artifact", "of which imports")
LABELS = {
    "InferenceSession": "native: `InferenceSession(path)` + run",
    "compile_model": "native: `compile_model(path)` + infer",
    "import_model": "native: `import_model(blob)` + infer",
    "ReferenceEvaluator": "native: `ReferenceEvaluator(path)` + run",
    "unirun": "unirun: `load(path)` (cache hit) + call",
}


# -- the parent: models, cache, rounds ---------------------------------------------------------


def _large_model(megabytes: float, path: Path) -> tuple[Any, dict[str, tuple[int, ...]]]:
    """Three square MatMul+Relu layers holding ``megabytes`` of float32 weights, saved with the
    weights in one external data file next to ``path``."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n = max(64, int(math.sqrt(megabytes * 1e6 / 4 / 3)) // 64 * 64)
    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(
            (rng.standard_normal((n, n), dtype=np.float32) / np.float32(math.sqrt(n))), f"w{i}"
        )
        for i in range(3)
    ]
    nodes, last = [], "x"
    for i in range(3):
        nodes.append(helper.make_node("MatMul", [last, f"w{i}"], [f"m{i}"]))
        last = "y" if i == 2 else f"r{i}"
        nodes.append(helper.make_node("Relu", [f"m{i}"], [last]))
    graph = helper.make_graph(
        nodes,
        "large_weights",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])],
        weights,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.save(proto, str(path), save_as_external_data=True, location=f"{path.stem}.weights")
    return proto, {"x": (1, n)}


def _prepare(work: Path, large_mb: float, engines: list[str]) -> dict[str, str]:
    """Write the models and their inputs, fill unirun's cache (and export OpenVINO blobs), and
    return a human description of each model."""
    import numpy as np
    import onnx

    import unirun
    from unirun.testing import conv_net

    described: dict[str, str] = {}
    cnn = conv_net(batch=1, size=64)
    onnx.save(cnn, str(work / "cnn.onnx"))
    models: dict[str, dict[str, tuple[int, ...]]] = {"cnn": {"image": (1, 3, 64, 64)}}
    _, models["large"] = _large_model(large_mb, work / "large.onnx")
    for name, shapes in models.items():
        rng = np.random.default_rng(1)
        feeds = {k: rng.standard_normal(v).astype(np.float32) for k, v in shapes.items()}
        np.savez(work / f"{name}.feeds.npz", **feeds)
        size = sum(f.stat().st_size for f in work.glob(f"{name}.*") if f.suffix != ".npz")
        described[name] = (f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB") + (
            " (weights in an external data file)" if name == "large" else ""
        )
        for engine in engines:
            with unirun.load(
                work / f"{name}.onnx", backend=engine, device="cpu", cache=work / "cache"
            ) as model:
                model(feeds)
                extra = model.artifact.manifest.extra
            if engine == "openvino":
                import openvino as ov

                props = dict(extra.get("properties", {}))
                (work / f"{name}.ov.json").write_text(json.dumps(props))
                compiled = ov.Core().compile_model(str(work / f"{name}.onnx"), "CPU", props)
                (work / f"{name}.blob").write_bytes(compiled.export_model().getvalue())
    return described


def run(quick: bool = False, rounds: int | None = None, large_mb: float | None = None) -> Section:
    rounds = rounds or (1 if quick else 7)
    large_mb = large_mb or (4.0 if quick else 150.0)
    engines = [e for e, module in ENGINES.items() if importlib.util.find_spec(module) is not None]
    work = Path(tempfile.mkdtemp(prefix="unirun-bench-load-"))
    section = Section(
        "cached-load",
        "Cache hits: from `unirun.load` to the first result",
        f"Each sample is a fresh process ({rounds} per row, the rows alternating). *imports* "
        "is `import numpy` and the engine's module (and `import unirun` on unirun's rows); "
        "*to first result* starts after them. What unirun imports on first use (the "
        "registry, pydantic, `onnx` to read the model…) falls inside it, as it does for a "
        "user. The unirun cache was filled beforehand; every unirun sample is a cache hit. The "
        "ratio is the median of the per-round ratios to the native path marked ★, the "
        "engine's fastest way to a loaded model. The steps table splits one profiled unirun "
        "cache hit by the public call that does each step (cProfile inflates Python-heavy "
        "steps: read it for proportions); its last three columns are parts of the steps "
        "before them.",
        target="the cached load costs little over the engine's own load of the same file "
        "(issue 15: hash the source once, skip re-hashing unchanged payloads).",
    )
    env = child_env(UNIRUN_CACHE_DIR=str(work / "cache"))  # the children's default cache
    try:
        described = _prepare(work, large_mb, engines)
        for model, description in described.items():
            section.tables += _model_tables(model, description, engines, work, env, rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    missing = sorted(set(ENGINES) - set(engines))
    if missing:
        section.notes.append(f"Not installed here, so not measured: {', '.join(missing)}.")
    return section


def _code(kind: str, engine: str, work: Path, model: str, profile: bool = False) -> str:
    return (
        "from bench.cached_load import child\n"
        f"child({kind!r}, {engine!r}, {str(work)!r}, {model!r}, profile={profile!r})"
    )


def _model_tables(
    model: str, description: str, engines: list[str], work: Path, env: dict[str, str], rounds: int
) -> list[Table]:
    candidates: dict[tuple[str, str], Callable[[], float]] = {}
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def sample(engine: str, kind: str) -> Callable[[], float]:
        def one() -> float:
            result = run_json(_code(kind, engine, work, model), env)
            if kind == "unirun" and result["status"] != "hit":
                raise RuntimeError(f"{engine}: expected a cache hit, got {result['status']}")
            results.setdefault((engine, kind), []).append(result)
            return float(result["first"])

        return one

    for engine in engines:
        for kind in (*NATIVE_OF[engine], "unirun"):
            candidates[(engine, kind)] = sample(engine, kind)
    keyed = {f"{e}/{k}": fn for (e, k), fn in candidates.items()}
    interleave(keyed, rounds)
    table = Table(
        ["engine", "path", "imports ms (IQR)", "to first result ms (IQR)", "ratio to ★ (IQR)"],
        caption=f"**{model}** ({description}):",
    )
    steps = Table(
        ["engine", "profiled total ms", *STEPS, "other", *EXTRA_STEPS],
        caption=f"unirun's cache hit on **{model}**, split by step (ms under cProfile):",
    )
    for engine in engines:
        native = [r["first"] for r in results[(engine, BASELINE[engine])]]
        for kind in (*NATIVE_OF[engine], "unirun"):
            rows = results[(engine, kind)]
            first = Stats.of([r["first"] for r in rows])
            table.add(
                engine,
                LABELS[kind] + (" ★" if kind == BASELINE[engine] else ""),
                Stats.of([r["imports"] for r in rows]).ms(),
                first.ms(),
                Stats.of([r["first"] / n for r, n in zip(rows, native, strict=True)]).times(),
            )
        profiled = run_json(_code("unirun", engine, work, model, profile=True), env)
        split = profiled["steps"]
        total = float(profiled["first"])
        known = sum(split[s] for s in STEPS)
        steps.add(
            engine,
            f"{total * 1e3:.1f}",
            *(f"{split[s] * 1e3:.1f}" for s in STEPS),
            f"{(total - known) * 1e3:.1f}",
            *(f"{split[s] * 1e3:.1f}" for s in EXTRA_STEPS),
        )
    return [table, steps]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--rounds", type=int, help="fresh processes per row")
    parser.add_argument("--large-mb", type=float, help="weights of the large model, MB")
    args = parser.parse_args()
    print(run(args.quick, args.rounds, args.large_mb).markdown())


if __name__ == "__main__":
    main()
