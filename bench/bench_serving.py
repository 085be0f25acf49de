"""What serving costs: direct ``model(...)`` against ``unirun serve`` from one process and from
Ray Serve replicas, same models, same inputs, same run.

    python -m bench.bench_serving [--requests 200] [--clients 8] [--replicas 2] [--no-ray]

Both servers are the real command (``python -m unirun serve``) in a subprocess on 127.0.0.1,
driven by tritonclient.http with binary tensors. Reported per case: requests/s and p50/p99
latency, sequentially (one client) and with ``--clients`` concurrent clients (one thread and one
client each). Every load loop is bounded by ``--requests``.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import unirun
from unirun.tensor import random_feeds
from unirun.testing import conv_net, mlp

CASES = {
    "mlp 1x16 (tiny)": (lambda: mlp(), {"x": (1, 16)}),
    "conv_net 1x3x64x64": (lambda: conv_net(size=64), {"image": (1, 3, 64, 64)}),
}


def _stats(latencies: list[float], wall: float) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (
        f"{len(ordered) / wall:8.0f} req/s  p50 {statistics.median(ordered) * 1e3:7.2f} ms  "
        f"p99 {p99 * 1e3:7.2f} ms"
    )


def _sequential(call: Callable[[], object], requests: int) -> str:
    for _ in range(5):
        call()
    latencies = []
    start = time.perf_counter()
    for _ in range(requests):
        t = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - t)
    return _stats(latencies, time.perf_counter() - start)


def _concurrent(make_call: Callable[[], Callable[[], object]], clients: int, requests: int) -> str:
    latencies: list[float] = []
    lock = threading.Lock()
    per_client = max(1, requests // clients)
    barrier = threading.Barrier(clients + 1)

    def worker() -> None:
        call = make_call()
        call()
        mine = []
        barrier.wait()
        for _ in range(per_client):
            t = time.perf_counter()
            call()
            mine.append(time.perf_counter() - t)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join(600)
    return _stats(latencies, time.perf_counter() - start)


class Server:
    """``python -m unirun serve`` in a subprocess; stopped with SIGTERM."""

    def __init__(self, repo: Path, *extra: str, timeout_s: float = 300) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "unirun", "serve", str(repo), "--port", "0", *extra],
            stdout=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + timeout_s
        assert self.process.stdout is not None
        line = ""
        while "listening on" not in line:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"unirun serve {' '.join(extra)} did not start")
            line = self.process.stdout.readline()
        self.address = line.split("http://", 1)[1].split()[0]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)


def _client_call(address: str, model: str, feeds: dict[str, Any]) -> Callable[[], object]:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(address, network_timeout=120.0)
    inputs = []
    for name, value in feeds.items():
        item = httpclient.InferInput(name, list(value.shape), "FP32")
        item.set_data_from_numpy(value)
        inputs.append(item)
    return lambda: client.infer(model, inputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200, help="requests per measurement")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--replicas", type=int, default=2, help="Ray Serve replicas")
    parser.add_argument("--num-cpus", type=float, default=0.5, help="CPUs per replica")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray Serve mode")
    args = parser.parse_args()
    os.environ.setdefault("UNIRUN_CACHE_DIR", tempfile.mkdtemp(prefix="unirun-bench-"))
    repo = Path(tempfile.mkdtemp(prefix="unirun-bench-repo-"))
    feeds: dict[str, dict[str, Any]] = {}
    models: dict[str, unirun.Model] = {}
    for index, (label, (build, shapes)) in enumerate(CASES.items()):
        name = f"case{index}"
        art = unirun.compile(build(), backend=args.backend, device="cpu", threads=1)
        art.save(repo / f"{name}.unirun")
        models[label] = unirun.load(repo / f"{name}.unirun")
        specs = models[label].inputs
        fixed = {k: unirun.ShapeRange.fixed(v) for k, v in shapes.items()}
        feeds[label] = random_feeds(specs, fixed)
    print(
        f"unirun {unirun.__version__}, {args.backend} (1 engine thread per model), "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; {args.requests} requests per row, {args.clients} "
        "concurrent clients"
    )
    modes: list[tuple[str, tuple[str, ...]]] = [("one process", ())]
    if not args.no_ray:
        modes.append(
            (
                f"Ray Serve {args.replicas}×{args.num_cpus:g} CPU",
                ("--replicas", str(args.replicas), "--num-cpus", str(args.num_cpus)),
            )
        )
    rows: list[tuple[str, str, str]] = []
    n, c = args.requests, args.clients
    for label, model in models.items():
        call = partial(model.infer, feeds[label])
        rows.append((label, "direct model(...), sequential", _sequential(call, n)))
        rows.append((label, f"direct model(...), {c} threads", _concurrent(lambda f=call: f, c, n)))
    for mode, extra in modes:
        started = time.perf_counter()
        server = Server(repo, *extra)
        ready = time.perf_counter() - started
        try:
            for index, label in enumerate(models):
                make = partial(_client_call, server.address, f"case{index}", feeds[label])
                title = f"{mode} (ready in {ready:.1f} s)"
                rows.append((label, f"{title}, sequential", _sequential(make(), n)))
                rows.append((label, f"{mode}, {c} clients", _concurrent(make, c, n)))
        finally:
            server.stop()
    for label, mode, result in sorted(rows, key=lambda r: r[0]):
        print(f"{label:22} {mode:48} {result}")
    for model in models.values():
        model.close()


if __name__ == "__main__":
    main()
