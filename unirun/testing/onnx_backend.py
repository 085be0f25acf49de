"""The official ONNX operator tests through unirun, beside the same tests through the engine's own
Python API, so that the two can be compared in one run.

The corpus is the node-test suite of the installed ``onnx`` package (``onnx.backend.test``: one
small model per operator variant, with inputs and expected outputs), generated in memory. Any
unirun backend can be exposed as an ``onnx.backend.base.Backend`` with :func:`onnx_backend`, so the
suite (or ONNX's own ``onnx.backend.test.runner.Runner``) can drive it. Inputs of types numpy lacks
(bfloat16, float8, int4) arrive as ``ml_dtypes`` arrays and go through :class:`unirun.DType` like
any other.

Command line (writes one JSON file with a result per test and a summary per run)::

    python -m unirun.testing.onnx_backend --backend onnxruntime --native
    python -m unirun.testing.onnx_backend --backend openvino --native -k "conv|gemm"
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .. import _registry
from ..backend import SupportsNativeRunner
from ..device import Device
from ..dtypes import DType
from ..errors import UnirunError

__all__ = [
    "NativeBackend",
    "NodeCase",
    "Outcome",
    "compare",
    "main",
    "native_backend",
    "node_cases",
    "onnx_backend",
    "run_case",
    "run_suite",
    "summarize",
]

Array = np.ndarray[Any, Any]

#: Tests the pytest suites run instead of the whole corpus: common operators of every family,
#: plus the cases whose inputs or outputs numpy cannot hold without ``ml_dtypes``.
SAMPLE = re.compile(
    r"^test_("
    r"abs|add|add_bcast|relu|sigmoid|tanh|softmax_axis_1|gemm_default_no_bias|matmul_2d|"
    r"conv_with_strides_padding|maxpool_2d_default|averagepool_2d_default|"
    r"batchnorm_example|layer_normalization_2d_axis0|reshape_reduced_dims|transpose_default|"
    r"concat_2d_axis_0|gather_0|slice|split_equal_parts_1d_opset18|squeeze|unsqueeze_axis_0|"
    r"reduce_mean_default_axes_keepdims_example|reduce_sum_keepdims_example|argmax_default_axis_example|"
    r"where_example|equal|not_2d|and2d|cast_FLOAT_to_FLOAT16|cast_FLOAT_to_BFLOAT16|"
    r"cast_BFLOAT16_to_FLOAT|cast_FLOAT_to_FLOAT8E4M3FN|cast_FLOAT8E4M3FN_to_FLOAT|"
    r"cast_FLOAT_to_INT4|cast_INT4_to_FLOAT|cast_UINT4_to_UINT8|cast_FLOAT16_to_FLOAT|"
    r"dequantizelinear|quantizelinear|identity|shape|size|expand_dim_changed|tile|pad|"
    r"resize_upsample_scales_nearest|topk|cumsum_1d|einsum_batch_matmul|range_float_type_positive_delta|"
    r"constant|constantofshape_int_zeros|nonzero_example|onehot_with_axis|clip|erf|gelu_default_1|"
    r"lstm_defaults|gru_defaults|if|loop11|scan9_sum|strnormalizer_export_monday_casesensintive_lower"
    r")$"
)


@dataclass(frozen=True)
class NodeCase:
    """One test of the corpus: a model, its inputs, the expected outputs and tolerances."""

    name: str
    model: Any  # onnx.ModelProto
    inputs: tuple[Any, ...]
    outputs: tuple[Any, ...]
    rtol: float
    atol: float


@dataclass(frozen=True)
class Outcome:
    """``status`` is ``pass``, ``fail`` (ran, wrong result) or ``error`` (raised); ``stage`` says
    where: ``prepare`` (compile and load), ``run`` or ``compare``."""

    status: str
    stage: str = ""
    message: str = ""

    def to_json(self) -> dict[str, str]:
        data = {"status": self.status}
        if self.stage:
            data["stage"] = self.stage
        if self.message:
            data["message"] = self.message
        return data


def node_cases(pattern: str | re.Pattern[str] | None = None) -> list[NodeCase]:
    """The node tests of the installed ``onnx``, optionally those whose name matches ``pattern``
    (``re.search``)."""
    import onnx

    collected = _collected()
    regex = re.compile(pattern) if isinstance(pattern, str) else pattern
    cases = []
    for case in collected:
        if regex is not None and not regex.search(case.name):
            continue
        for inputs, outputs in case.data_sets or ():
            cases.append(
                NodeCase(
                    case.name,
                    case.model,
                    tuple(_value(v, onnx) for v in inputs),
                    tuple(_value(v, onnx) for v in outputs),
                    case.rtol,
                    case.atol,
                )
            )
    return cases


@functools.cache
def _collected() -> list[Any]:
    from onnx.backend.test.case import node

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the generators overflow casts on purpose
        return list(node.collect_testcases())


def _value(value: Any, onnx: Any) -> Any:
    if isinstance(value, onnx.TensorProto):
        return onnx.numpy_helper.to_array(value)
    if isinstance(value, np.generic):  # a 0-d tensor the generators wrote as np.float32(...)
        return np.asarray(value)
    return value


# -- unirun as an onnx.backend Backend -----------------------------------------------------------


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


# -- native baselines ----------------------------------------------------------------------------


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


# -- running and comparing -----------------------------------------------------------------------


def run_case(backend: Any, case: NodeCase, device: str = "CPU") -> Outcome:
    """Prepare ``case.model`` on ``backend`` (anything with ``prepare(model, device)``), run it
    and compare with the expected outputs."""
    with warnings.catch_warnings():
        # The corpus feeds NaN, infinities and overflowing casts on purpose; numpy-based
        # engines warn about them, which is not a failure.
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            rep = backend.prepare(case.model, device)
        except Exception as exc:
            return Outcome("error", "prepare", _describe(exc))
        try:
            got = list(rep.run(list(case.inputs)))
        except Exception as exc:
            return Outcome("error", "run", _describe(exc))
        finally:
            close = getattr(rep, "close", None)
            if callable(close):
                close()
    try:
        problem = compare(case.outputs, got, case.rtol, case.atol)
    except Exception as exc:
        problem = f"cannot compare: {_describe(exc)}"
    return Outcome("fail", "compare", problem) if problem else Outcome("pass")


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    text = text if len(text) <= 240 else text[:240] + " …"
    return f"{type(exc).__name__}: {text}"


def compare(expected: Sequence[Any], got: Sequence[Any], rtol: float, atol: float) -> str | None:
    """None if ``got`` matches ``expected``, else what differs. Shapes and dtypes must be equal;
    floats within ``rtol``/``atol`` (narrow floats compared in float32, bfloat16 to two units in
    the last place); everything else exactly."""
    if len(got) != len(expected):
        return f"expected {len(expected)} outputs, got {len(got)}"
    for index, (want, have) in enumerate(zip(expected, got, strict=True)):
        problem = _compare_one(want, have, rtol, atol)
        if problem:
            return f"output {index}: {problem}"
    return None


_NUMPY_FLOATS = (DType.FLOAT16, DType.FLOAT32, DType.FLOAT64)


def _compare_one(want: Any, have: Any, rtol: float, atol: float) -> str | None:
    if isinstance(want, (list, tuple)):
        if not isinstance(have, (list, tuple)) or len(have) != len(want):
            return f"expected a sequence of {len(want)}, got {type(have).__name__}"
        for i, (w, h) in enumerate(zip(want, have, strict=True)):
            problem = _compare_one(w, h, rtol, atol)
            if problem:
                return f"item {i}: {problem}"
        return None
    if want is None or have is None:
        return None if want is None and have is None else "expected and got differ in presence"
    if isinstance(want, dict):
        if not isinstance(have, dict) or set(have) != set(want):
            return f"expected a map with keys {sorted(want)!r:.80}, got {type(have).__name__}"
        for key in want:
            problem = _compare_one(want[key], have[key], rtol, atol)
            if problem:
                return f"key {key!r}: {problem}"
        return None
    want, have = np.asarray(want), np.asarray(have)
    if want.shape != have.shape:
        return f"shape {have.shape}, expected {want.shape}"
    if want.dtype == object:
        return None if np.array_equal(want, have) else "strings differ"
    if want.dtype != have.dtype:
        return f"dtype {have.dtype}, expected {want.dtype}"
    kind = DType.from_numpy(want.dtype)
    if kind.is_float or want.dtype.kind == "c":
        if kind.is_float and kind not in _NUMPY_FLOATS:  # ml_dtypes types: compare in float32
            if kind is DType.BFLOAT16:
                rtol = max(rtol, 2.0**-6)
            want, have = want.astype(np.float32), have.astype(np.float32)
        if np.allclose(have, want, rtol=rtol, atol=atol, equal_nan=True):
            return None
        with np.errstate(invalid="ignore"):
            worst = float(np.nanmax(np.abs(have.astype(complex) - want.astype(complex))))
        return f"values differ (max abs difference {worst:.3g})"
    if kind.bits < 8:
        want, have = want.astype(np.int8), have.astype(np.int8)
    if np.array_equal(want, have):
        return None
    return f"values differ at {int(np.count_nonzero(want != have))} of {want.size} elements"


def run_suite(
    backend: Any,
    cases: Iterable[NodeCase],
    device: str = "CPU",
    progress: Callable[[str, Outcome], None] | None = None,
) -> dict[str, Outcome]:
    """Run every case; returns test name → outcome (a test with several data sets passes only
    if all do)."""
    results: dict[str, Outcome] = {}
    for case in cases:
        outcome = run_case(backend, case, device)
        if results.get(case.name, Outcome("pass")).status == "pass":
            results[case.name] = outcome
        if progress is not None:
            progress(case.name, outcome)
    return results


def summarize(results: Mapping[str, Outcome]) -> dict[str, int]:
    counts = {"tests": len(results), "pass": 0, "fail": 0, "error": 0}
    for outcome in results.values():
        counts[outcome.status] += 1
    return counts


# -- command line --------------------------------------------------------------------------------


def _versions(name: str) -> dict[str, str | None]:
    import onnx

    import unirun

    info = next((i for i in unirun.backends() if i.name == name), None)
    return {
        "onnx": onnx.__version__,
        "unirun": unirun.__version__,
        "engine": info.version if info else None,
        "plugin": info.plugin_version if info else None,
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}",
    }


def report(
    name: str, device: str, runs: Mapping[str, tuple[dict[str, Outcome], float]]
) -> dict[str, Any]:
    """The JSON document the command line writes: versions, every test's name, then per run a
    summary, the time it took and the outcome of each test that did not pass; with two runs,
    the tests only one of them passes."""
    names = sorted({test for results, _ in runs.values() for test in results})
    doc: dict[str, Any] = {
        "suite": "onnx.backend.test node tests",
        "backend": name,
        "device": device,
        "versions": _versions(name),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tests": names,
        "runs": {},
    }
    for mode, (results, seconds) in runs.items():
        doc["runs"][mode] = {
            "summary": summarize(results),
            "seconds": round(seconds, 1),
            "not_passed": {
                k: v.to_json() for k, v in sorted(results.items()) if v.status != "pass"
            },
        }
    if "unirun" in runs and "native" in runs:
        ours, theirs = runs["unirun"][0], runs["native"][0]

        def passed(results: Mapping[str, Outcome]) -> set[str]:
            return {k for k, v in results.items() if v.status == "pass"}

        doc["only_unirun_passes"] = sorted(passed(ours) - passed(theirs))
        doc["only_native_passes"] = sorted(passed(theirs) - passed(ours))
    return doc


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m unirun.testing.onnx_backend",
        description="Run the ONNX node-test suite through a unirun backend (and natively).",
    )
    parser.add_argument("--backend", "-b", required=True, help="unirun backend name")
    parser.add_argument("--device", "-d", default="cpu", help="unirun device (default cpu)")
    parser.add_argument(
        "--native", action="store_true", help="also run the engine's own Python API"
    )
    parser.add_argument("--native-only", action="store_true", help="run only the engine's own API")
    parser.add_argument("-k", dest="pattern", help="only tests whose name matches this regex")
    parser.add_argument("--sample", action="store_true", help="only the representative sample")
    parser.add_argument("--out", "-o", type=Path, help="JSON file to write")
    parser.add_argument("--verbose", "-v", action="store_true", help="print every test")
    args = parser.parse_args(argv)

    pattern: str | re.Pattern[str] | None = SAMPLE if args.sample else args.pattern
    cases = node_cases(pattern)
    modes: dict[str, Any] = {}
    if not args.native_only:
        modes["unirun"] = onnx_backend(args.backend)
    if args.native or args.native_only:
        modes["native"] = native_backend(args.backend)

    def progress(test: str, outcome: Outcome) -> None:
        if args.verbose:
            print(f"{test}: {outcome.status} {outcome.message}", flush=True)

    runs: dict[str, tuple[dict[str, Outcome], float]] = {}
    for mode, backend in modes.items():
        started = time.perf_counter()
        device = args.device
        results = run_suite(backend, cases, device, progress)
        runs[mode] = (results, time.perf_counter() - started)
        counts = summarize(results)
        print(
            f"{args.backend} {mode:>6}: {counts['pass']} passed, {counts['fail']} failed, "
            f"{counts['error']} errors of {counts['tests']} in {runs[mode][1]:.1f}s",
            flush=True,
        )
    doc = report(args.backend, args.device, runs)
    out = args.out or Path("node-suite-results") / f"{args.backend}-{args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
