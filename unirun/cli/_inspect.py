"""``unirun inspect``: what a model (or a saved artifact) is, and which backends can take it."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from .. import _registry
from ..artifact import MANIFEST_NAME, Artifact
from ..backend import SupportsOpCheck
from ..device import Device
from ..dtypes import DType
from ..options import CompileOptions, ShapeRange
from ..source import OnnxModel, check_shapes, graphs
from ..tensor import TensorSpec
from ..values import ValueKind
from ._app import app, console, escape, human_bytes, write_json
from ._inputs import parse_shapes

_SHOW_UNSUPPORTED = 8


def _shape(spec: TensorSpec) -> str:
    return "?" if spec.shape is None else f"[{', '.join(str(d) for d in spec.shape)}]"


def _tensor_size(tensor: Any) -> tuple[int, int]:
    """(elements, bytes) of a TensorProto, external data included, without loading it."""
    count = math.prod(tensor.dims)
    try:
        dtype = DType.from_onnx(tensor.data_type)
    except ValueError:
        return count, 0
    if dtype is DType.STRING:
        return count, sum(len(s) for s in tensor.string_data)
    return count, (count * dtype.bits + 7) // 8


def model_report(model: OnnxModel) -> dict[str, Any]:
    """Everything ``inspect`` prints about an ONNX model, as JSON-ready data."""
    proto = model.proto
    ops: Counter[str] = Counter()
    params = tensors = size = 0
    subgraphs = -1
    for graph in graphs(proto.graph):
        subgraphs += 1
        for node in graph.node:
            ops[f"{node.domain}:{node.op_type}" if node.domain else node.op_type] += 1
            if node.op_type == "Constant" and not node.domain:
                for attr in node.attribute:
                    if attr.name == "value":
                        n, b = _tensor_size(attr.t)
                        params, tensors, size = params + n, tensors + 1, size + b
        for init in graph.initializer:
            n, b = _tensor_size(init)
            params, tensors, size = params + n, tensors + 1, size + b
    files = []
    for file in model.external_files:
        files.append({"file": file.name, "bytes": file.stat().st_size if file.exists() else None})
    file_bytes = model.path.stat().st_size if model.path is not None else len(model.data)
    return {
        "path": str(model.path) if model.path else None,
        "file_bytes": file_bytes,
        "sha256": model.sha256,
        "ir_version": proto.ir_version,
        "producer": " ".join(p for p in (proto.producer_name, proto.producer_version) if p),
        "graph": proto.graph.name,
        "opsets": {(o.domain or "ai.onnx"): o.version for o in proto.opset_import},
        "inputs": [s.to_json() for s in model.inputs],
        "outputs": [s.to_json() for s in model.outputs],
        "nodes": sum(ops.values()),
        "subgraphs": subgraphs,
        "ops": dict(ops.most_common()),
        "functions": [f"{f.domain}:{f.name}" if f.domain else f.name for f in proto.functions],
        "parameters": {"count": params, "bytes": size, "tensors": tensors},
        "external_data": files,
    }


def backend_verdicts(
    model: OnnxModel, only: str | None = None, shapes: Mapping[str, ShapeRange] | None = None
) -> list[dict[str, Any]]:
    """For every backend that can compile here: can it take the model? (``yes``/``no``/
    ``unknown``). ``only`` restricts the answer to one backend; ``shapes`` are the shapes it
    would be compiled with (a backend's operator check may depend on them)."""
    verdicts = []
    specs = model.inputs + model.outputs
    dynamic = [s.name for s in model.inputs if s.kind is None and not s.is_static]
    for info in _registry.backends():
        if only is not None and info.name != only:
            continue
        if not info.can_compile or info.capabilities is None:
            continue
        caps = info.capabilities
        backend = _registry.get_backend(info.name, for_compile=True)
        targets = info.devices or tuple(backend.devices())
        device = targets[0].device if targets else Device("cpu")
        notes: list[str] = []
        if not info.available:
            notes.append("compiles here but cannot run here (see unirun backends)")
        unsupported: list[tuple[str, str]] | None = None
        verdict = "unknown"
        if isinstance(backend, SupportsOpCheck):
            try:
                found = backend.unsupported_ops(model, device, shapes or {})
            except Exception as exc:  # an optional helper must not break inspect
                notes.append(f"operator check failed: {type(exc).__name__}: {exc}")
            else:
                if found is not None:
                    unsupported = [(str(n), str(o)) for n, o in found]
                    verdict = "no" if unsupported else "yes"
        else:
            notes.append("the plugin cannot check operators without compiling")
        used = {d for s in specs for d in (s.kind.dtypes if s.kind is not None else {s.dtype})}
        dtypes = sorted(d.value for d in used if d not in caps.dtypes)
        if dtypes:
            verdict = "no"
            notes.append(f"no {', '.join(dtypes)} inputs/outputs")
        valued = [
            s for s in specs if s.kind is not None and not s.kind.kinds <= set(caps.value_kinds)
        ]
        if valued:
            verdict = "no"
            missing = set().union(*(s.kind.kinds for s in valued if s.kind is not None))
            kinds = [str(k) for k in ValueKind if k in missing - set(caps.value_kinds)]
            notes.append(f"no {' or '.join(kinds)} values ({'; '.join(map(str, valued))})")
        if dynamic and caps.dynamic_shapes != "free":
            kind = "fixed shapes" if caps.dynamic_shapes == "static" else "shape bounds"
            notes.append(f"needs {kind} (--shape) for {', '.join(dynamic)}")
        verdicts.append(
            {
                "backend": info.name,
                "device": str(device),
                "verdict": verdict,
                "unsupported": [{"node": n, "op": o} for n, o in unsupported or []],
                "notes": notes,
            }
        )
    return verdicts


@app.command()
def inspect(
    model: Path = typer.Argument(
        ..., exists=True, help="An .onnx file or a saved artifact directory."
    ),
    check_backends: bool = typer.Option(
        True,
        "--backends/--no-backends",
        help="Ask each available backend whether it can take the model.",
    ),
    only: str | None = typer.Option(
        None, "--backend", "-b", help="Ask only this backend (e.g. coreml: which ops it lowers)."
    ),
    shapes: list[str] = typer.Option(
        [],
        "--shape",
        help="NAME=1x3x224x224 or NAME=MIN:OPT:MAX, as for compile: the operator checks take "
        "the model with these shapes.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Describe MODEL and say which available backends can take it.

    Shows IR and opset versions, producer, inputs and outputs (symbolic dimensions included),
    an operator histogram, the parameter count and bytes, external data files, and per backend
    the operators it cannot run where the plugin can tell without compiling. For an artifact
    directory it shows the manifest instead.
    """
    if model.is_dir():
        _artifact(Artifact.open(model), as_json)
        return
    onnx_model = OnnxModel.from_source(model)
    report = model_report(onnx_model)
    if only is not None:
        _registry.get_backend(only, for_compile=True)  # a clear error if it cannot even compile
    if check_backends:
        bounds = CompileOptions(shapes=parse_shapes(shapes)).shapes  # checked by parse_shapes
        check_shapes(onnx_model.inputs, bounds)
        report["backends"] = backend_verdicts(onnx_model, only, bounds)
    if as_json:
        write_json(report)
        return
    _print_model(model, report)


def _print_model(path: Path, r: dict[str, Any]) -> None:
    opsets = ", ".join(f"{d} {v}" for d, v in r["opsets"].items())
    console.print(
        f"[bold]{escape(path.name)}[/] · {human_bytes(r['file_bytes'])} · IR {r['ir_version']}"
        f" · opset {escape(opsets)} · producer {escape(r['producer'] or 'unknown')}"
    )
    io = Table(title_justify="left", show_edge=False)
    for col in ("", "name", "dtype", "shape"):
        io.add_column(col)
    for kind in ("inputs", "outputs"):
        for spec in r[kind]:
            if "kind" in spec:  # a sequence, map or optional: its type says it all
                value = TensorSpec.from_json(spec).kind
                io.add_row(kind[:-1], escape(spec["name"]), escape(str(value)), "")
                continue
            shape = "?" if spec["shape"] is None else f"[{', '.join(map(str, spec['shape']))}]"
            io.add_row(kind[:-1], escape(spec["name"]), spec["dtype"], escape(shape))
    console.print(io)
    where = f" ({r['subgraphs']} subgraphs)" if r["subgraphs"] else ""
    histogram = " · ".join(f"{escape(op)} {n}" for op, n in r["ops"].items())
    console.print(f"[bold]operators[/]: {r['nodes']} nodes{where}: {histogram}")
    if r["functions"]:
        console.print(f"[bold]local functions[/]: {escape(', '.join(r['functions']))}")
    p = r["parameters"]
    console.print(
        f"[bold]parameters[/]: {p['count']:,} ({human_bytes(p['bytes'])}) in {p['tensors']} tensors"
    )
    if r["external_data"]:
        files = ", ".join(
            f"{f['file']} ({human_bytes(f['bytes']) if f['bytes'] is not None else 'missing'})"
            for f in r["external_data"]
        )
        console.print(f"[bold]external data[/]: {escape(files)}")
    else:
        console.print("[bold]external data[/]: none (weights inside the file)")
    if "backends" in r:
        _print_verdicts(r["backends"])


def _print_verdicts(verdicts: list[dict[str, Any]]) -> None:
    table = Table(title="backends", title_justify="left", show_edge=False)
    table.add_column("backend", style="bold", no_wrap=True)
    table.add_column("device", no_wrap=True)
    table.add_column("takes it", no_wrap=True)
    table.add_column("details", overflow="fold")
    colour = {"yes": "green", "no": "red", "unknown": "yellow"}
    for v in verdicts:
        details = list(v["notes"])
        ops = v["unsupported"]
        if ops:
            shown = ", ".join(
                f"{o['op']} ({o['node'] or 'unnamed'})" for o in ops[:_SHOW_UNSUPPORTED]
            )
            more = (
                f" and {len(ops) - _SHOW_UNSUPPORTED} more" if len(ops) > _SHOW_UNSUPPORTED else ""
            )
            details.insert(0, f"unsupported: {shown}{more}")
        verdict = f"[{colour[v['verdict']]}]{v['verdict']}[/]"
        table.add_row(
            escape(v["backend"]), escape(v["device"]), verdict, escape("; ".join(details))
        )
    console.print(table)
    console.print("[dim]not listed: backends that cannot compile here (see unirun backends)[/]")


def _artifact(artifact: Artifact, as_json: bool) -> None:
    m = artifact.manifest
    if as_json:
        write_json(m.model_dump(mode="json"))
        return
    console.print(
        f"[bold]artifact[/] {escape(str(artifact.directory))} ({MANIFEST_NAME} verified)\n"
        f"  backend {escape(m.backend)} (plugin {escape(m.plugin_version)}, engine "
        f"{escape(m.runtime_version or '?')}, API {m.api_version}) · device {escape(m.device)}"
        + (f" ({escape(m.device_identity)})" if m.device_identity else "")
    )
    o = m.options
    shapes = "; ".join(f"{k} {v.describe()}" for k, v in o.shapes.items()) or "none"
    level = "default" if o.optimization_level is None else o.optimization_level
    console.print(
        f"  precision {o.precision} · shapes {escape(shapes)} · threads {o.threads or 'default'}"
        f" · optimization level {level}"
    )
    chosen = {k: v for k, v in o.backend_options.items() if v not in (None, {}, [])}
    if chosen:
        console.print(f"  backend options {escape(str(chosen))}")
    for kind, specs in (("input", artifact.inputs), ("output", artifact.outputs)):
        for spec in specs:
            if spec.kind is not None:
                console.print(f"  {kind} {escape(str(spec))}")
                continue
            console.print(f"  {kind} {escape(spec.name)}: {spec.dtype}{escape(_shape(spec))}")
    total = sum(f.size for f in m.files)
    console.print(
        f"  {len(m.files)} payload file(s), {human_bytes(total)}: "
        + escape(", ".join(f.path for f in m.files))
    )
    console.print(
        f"  built {m.created:%Y-%m-%d %H:%M UTC} by unirun {escape(m.unirun_version)} from "
        f"source sha256 {escape(m.source_sha256[:16])}…"
    )
