"""Write docs/support-matrix.md from each bundled backend's declared Capabilities and the
recorded ONNX node-suite results in docs/data/node-suite-<backend>.json.

    python docs/gen_support_matrix.py          # render the page from what is recorded
    python docs/gen_support_matrix.py --run    # first rerun the node suites (unirun and native)
                                               # for every bundled backend available here
    python docs/gen_support_matrix.py --check  # exit 1 if the page is not up to date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
DATA = DOCS / "data"
PAGE = DOCS / "support-matrix.md"

#: The backends shipped in this repository, in the order the page lists them.
BUNDLED = ("onnxruntime", "openvino", "tensorrt", "coreml", "reference")
#: Fragments of unirun's error message when a backend does not carry a test's sequence, map or
#: optional inputs/outputs (the older wording too, for runs recorded before value kinds).
NON_TENSOR = (
    "does not carry",
    "exchanges dense tensors only",
    "unknown to unirun",
    "sequences and maps are not tensors",
)
#: What is known about tests that pass on one side only, by test-name prefix.
NOTES = {
    "test_bernoulli": "draws random numbers, so it passes or fails by chance on either side",
    "test_rotary_embedding": "OpenVINO 2026.4 computes RotaryEmbedding wrongly in a compiled model "
    "that went through export_model/import_model (the plugin's blob artifact); compiled "
    "directly, as the native run does, it passes",
}
#: Why a backend has no node-suite run here, for the table.
UNRECORDED = {
    "coreml": "needs macOS (translator: see its page)",
    "tensorrt": "needs an NVIDIA GPU and TensorRT (not run: see its page)",
}
NARROW = ("BFLOAT16", "FLOAT8", "FLOAT4", "INT4", "UINT4", "INT2", "UINT2", "E8M0")


def capabilities(name: str) -> Any:
    """The backend's declared Capabilities, or None if its plugin cannot be loaded here."""
    from unirun.errors import UnirunError
    from unirun.testing._support import backend_object

    source = ROOT / "plugins" / name
    try:
        backend = backend_object(name, source if (source / "pyproject.toml").is_file() else None)
        return backend.capabilities
    except (UnirunError, ImportError):
        return None


def _dtypes(caps: Any) -> str:
    names = [d.value for d in caps.dtypes]
    return ", ".join(names) if len(names) <= 8 else f"{len(names)}: " + ", ".join(names)


def _values(caps: Any) -> str:
    kinds = [str(k) for k in getattr(caps, "value_kinds", ()) if str(k) != "tensor"]
    return ", ".join(kinds) if kinds else "tensors only"


def _row(name: str, caps: Any, suite: dict[str, Any] | None) -> str:
    if caps is None:
        return f"| {name} | (plugin not loadable here) | | | | | | | | |"
    devices = ", ".join(caps.device_kinds)
    precisions = ", ".join(caps.precisions)
    node = native = "not recorded"
    if suite is None and name in UNRECORDED:
        node = native = UNRECORDED[name]
    if suite is not None:
        total = len(suite["tests"])
        runs = suite["runs"]
        if "unirun" in runs:
            node = f"{runs['unirun']['summary']['pass']} / {total}"
        if "native" in runs:
            native = f"{runs['native']['summary']['pass']} / {total}"
    return (
        f"| {name} | {devices} | {precisions} | {caps.dynamic_shapes.value} | "
        f"{caps.thread_safety.value} | {caps.artifact_format} | {_dtypes(caps)} | "
        f"{_values(caps)} | {node} | {native} |"
    )


def _differences(name: str, suite: dict[str, Any]) -> list[str]:
    runs = suite["runs"]
    if "unirun" not in runs or "native" not in runs:
        return []
    ours = runs["unirun"]["not_passed"]
    only_native = suite["only_native_passes"]
    only_unirun = suite["only_unirun_passes"]
    non_tensor = [
        t for t in only_native if any(f in ours[t].get("message", "") for f in NON_TENSOR)
    ]
    other_native = [t for t in only_native if t not in non_tensor]
    narrow = [t for t in only_unirun if any(f in t.upper() for f in NARROW)]
    other_unirun = [t for t in only_unirun if t not in narrow]
    versions = suite["versions"]
    lines = [
        f"### {name}",
        "",
        f"{name} {versions['engine']}, plugin {versions['plugin']}, onnx {versions['onnx']}, "
        f"on {suite['device']} ({versions['machine']}, Python {versions['python']}); "
        f"recorded {suite['created'][:10]}.",
        "",
        "| run | passed | failed | errors | seconds |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for mode in ("unirun", "native"):
        s = runs[mode]["summary"]
        lines.append(
            f"| {mode} | {s['pass']} | {s['fail']} | {s['error']} | {runs[mode]['seconds']} |"
        )
    unirun_line = f"- Pass only through unirun: {len(only_unirun) or 'none'}"
    if narrow:
        unirun_line += (
            f", of which {len(narrow)} feed or return types numpy lacks (bfloat16, float8, "
            "float4, int4, int2), which unirun carries as `ml_dtypes` arrays"
        )
    lines += ["", unirun_line + "."]
    if other_unirun:
        lines.append(f"  {'Others' if narrow else 'They are'}: {_names(other_unirun)}.")
    native_line = f"- Pass only natively: {len(only_native) or 'none'}"
    if non_tensor:
        native_line += (
            f", of which {len(non_tensor)} have sequence or optional inputs or outputs, which "
            "this backend does not declare (`Capabilities.value_kinds`)"
        )
    lines.append(native_line + ".")
    if other_native:
        lines.append(f"  {'Others' if non_tensor else 'They are'}: {_names(other_native)}.")
    for prefix, note in NOTES.items():
        if any(t.startswith(prefix) for t in other_native + other_unirun):
            lines.append(f"  `{prefix}*`: {note}.")
    lines.append("")
    return lines


def _names(tests: list[str]) -> str:
    shown = ", ".join(f"`{t}`" for t in tests[:12])
    return shown + (f" and {len(tests) - 12} more" if len(tests) > 12 else "")


def render() -> str:
    suites = {}
    for name in BUNDLED:
        path = DATA / f"node-suite-{name}.json"
        if path.is_file():
            suites[name] = json.loads(path.read_text(encoding="utf-8"))
    lines = [
        "# Support matrix",
        "",
        "<!-- Generated by `python docs/gen_support_matrix.py`; do not edit by hand. -->",
        "",
        "What each bundled backend declares in its `Capabilities` (the conformance kit checks "
        "every declaration), and how many of the official ONNX node tests (`onnx.backend.test`, "
        "generated from the installed `onnx` package) pass through unirun and through the "
        "engine's own Python API in the same run. Per-test results are in `docs/data/`.",
        "",
        "| backend | devices | precisions | dynamic shapes | thread safety | artifact | dtypes "
        "| values besides tensors | node suite via unirun | natively |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | ---: | ---: |",
    ]
    for name in BUNDLED:
        lines.append(_row(name, capabilities(name), suites.get(name)))
    lines += [
        "",
        "*Values besides tensors*: the sequences, maps and optionals the backend takes and returns "
        "at a graph's edges (`Capabilities.value_kinds`; see "
        "[concepts](concepts.md#values-that-are-not-tensors)); a model with others is refused "
        "before compiling. "
        "*Dynamic shapes*: `free` takes any size at run time; `bounded` needs `shapes=` bounds "
        "at compile time; `static` needs fixed shapes. *Thread safety*: `concurrent` runs "
        "overlapping calls on one executable; `contexts` pools one engine context per "
        "concurrent call; `serial` runs one call at a time. The native baselines are "
        "`onnxruntime.InferenceSession` with its defaults for ONNX Runtime (the plugins' "
        "`native_runner`), `Core.read_model`/`compile_model` with "
        "`INFERENCE_PRECISION_HINT=f32` for OpenVINO, and `onnx.reference.ReferenceEvaluator` "
        "for the reference backend. Rerun with `python docs/gen_support_matrix.py --run`, or one "
        "engine with `python -m unirun.testing.onnx_backend -b NAME --native`.",
        "",
        "## ONNX node suite, unirun against native",
        "",
    ]
    for name, suite in suites.items():
        lines += _differences(name, suite)
    return "\n".join(lines).rstrip() + "\n"


def run_suites() -> None:
    import unirun
    from unirun.testing import onnx_backend

    available = {info.name for info in unirun.backends() if info.available}
    for name in BUNDLED:
        if name not in available:
            print(f"skipping {name}: not available here")
            continue
        out = DATA / f"node-suite-{name}.json"
        onnx_backend.main(["--backend", name, "--native", "--out", str(out)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="rerun the node suites first")
    parser.add_argument("--check", action="store_true", help="fail if the page is stale")
    args = parser.parse_args(argv)
    if args.run:
        run_suites()
    text = render()
    if args.check:
        current = PAGE.read_text(encoding="utf-8") if PAGE.is_file() else ""
        if current != text:
            print(f"{PAGE} is out of date: run python docs/gen_support_matrix.py")
            return 1
        return 0
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
