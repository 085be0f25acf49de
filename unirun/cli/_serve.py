"""``unirun serve``: answer the Open Inference Protocol v2 over HTTP, from one process or from
Ray Serve replicas. Starlette, uvicorn and Ray are imported only when the command runs."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import typer

from ._app import app, check_device, check_precision, err_console, escape, fail
from ._inputs import parse_shapes

_EXTRA = {"local": "serve", "ray": "ray-serve"}


def _require(mode: str) -> None:
    modules = ("starlette", "uvicorn") if mode == "local" else ("ray.serve", "starlette")
    for module in modules:
        try:
            __import__(module)
        except ImportError:
            raise fail(
                f"unirun serve{' --ray' if mode == 'ray' else ''} needs {module}: "
                f"pip install 'unirun[{_EXTRA[mode]}]'"
            ) from None


@app.command()
def serve(
    model: Path = typer.Argument(
        ...,
        exists=True,
        help="An .onnx file, a saved artifact, or a folder of them (one model per entry).",
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on (0: any free port)."),
    name: str | None = typer.Option(
        None, "--name", help="The model's name in URLs (default: the file name)."
    ),
    backend: str = typer.Option("auto", "--backend", "-b", help="Backend name, or auto."),
    device: str = typer.Option(
        "auto", "--device", "-d", callback=check_device, help="cpu, cuda:0, gpu, npu, ane, auto…"
    ),
    precision: str | None = typer.Option(
        None,
        "--precision",
        "-p",
        callback=lambda v: check_precision(v) if v is not None else None,
        help="fp32 (default), fp16 or bf16; for .onnx models.",
    ),
    shapes: list[str] = typer.Option(
        [], "--shape", help="NAME=1x3x224x224 or NAME=MIN:OPT:MAX; for .onnx models."
    ),
    threads: int | None = typer.Option(
        None, "--threads", min=1, help="Engine threads per model; for .onnx models."
    ),
    max_body_mb: float = typer.Option(
        64.0, "--max-body-mb", min=0.001, help="Refuse larger requests with HTTP 413."
    ),
    grace: float = typer.Option(
        10.0, "--grace", min=0, help="Seconds running requests get to finish on shutdown."
    ),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request."),
    use_ray: bool = typer.Option(False, "--ray", help="Serve from Ray Serve replicas."),
    replicas: int = typer.Option(
        1, "--replicas", min=1, help="Ray Serve replicas (more than 1 implies --ray)."
    ),
    num_cpus: float = typer.Option(1.0, "--num-cpus", min=0, help="CPUs per replica (--ray)."),
    num_gpus: float = typer.Option(0.0, "--num-gpus", min=0, help="GPUs per replica (--ray)."),
    max_batch_size: int = typer.Option(
        16, "--max-batch-size", min=1, help="Requests batched into one call (--ray)."
    ),
    batch_wait_ms: float = typer.Option(
        5.0, "--batch-wait-ms", min=0, help="How long a batch waits to fill (--ray)."
    ),
    address: str | None = typer.Option(
        None, "--address", help="A running Ray cluster to join (default: start a local one)."
    ),
) -> None:
    """Serve MODEL over the Open Inference Protocol v2 (KServe/Triton REST): tritonclient,
    KServe tooling and curl work unchanged. Stops on Ctrl-C or SIGTERM, letting running
    requests finish."""
    load_args: dict[str, Any] = {"backend": backend, "device": device}
    if precision is not None:
        load_args["precision"] = precision
    if shapes:
        load_args["shapes"] = parse_shapes(shapes)
    if threads is not None:
        load_args["threads"] = threads
    max_body = int(max_body_mb * (1 << 20))
    if use_ray or replicas > 1 or address is not None:
        _require("ray")
        if port == 0:  # Ray Serve's proxy binds the port itself: find a free one first
            from ..serve.local import bind

            with bind(host, 0) as probe:
                port = probe.getsockname()[1]
        _serve_ray(
            model,
            host=host,
            port=port,
            name=name,
            replicas=replicas,
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            address=address,
            max_batch_size=max_batch_size,
            batch_wait_timeout_s=batch_wait_ms / 1000,
            max_body_bytes=max_body,
            **load_args,
        )
        return
    _require("local")
    from ..serve.handler import OIPHandler
    from ..serve.local import bind
    from ..serve.local import serve as run_server

    handler = OIPHandler.from_path(model, name=name, max_body_bytes=max_body, **load_args)
    try:
        sock = bind(host, port)
    except OSError as exc:
        handler.close()
        raise fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound = sock.getsockname()[1]
    _announce(f"http://{host}:{bound}", handler.models)
    run_server(handler, sock, grace_s=grace, access_log=access_log, log_level="warning")


def _announce(url: str, models: Any) -> None:
    listed = ", ".join(
        f"{name} ({m.model.backend} on {m.model.device_label})" for name, m in models.items()
    )
    err_console.print(f"serving {escape(listed)} on {escape(url)}/v2 (Ctrl-C stops)")
    print(f"unirun serve: listening on {url}", flush=True)


def _serve_ray(model: Path, **kwargs: Any) -> None:
    from ..integrations.ray_serve import serve_replicas

    stop = threading.Event()

    def ready(url: str) -> None:
        # Installed only now: ray.init replaces the process's SIGTERM handler with its own,
        # which would end the driver without shutting Serve down.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        print(f"unirun serve: listening on {url} (Ray Serve)", flush=True)

    serve_replicas(model, stop=stop, on_ready=ready, **kwargs)
