"""Open Inference Protocol serving on Ray Serve replicas, with dynamic batching.

Needs ``unirun[ray-serve]``. Every replica loads the models once and answers the same routes
with the same :class:`~unirun.serve.OIPHandler` as the one-process server; requests to a model
whose inputs and outputs share a leading batch dimension are stacked across requests by
``@serve.batch`` into one engine call::

    from ray import serve
    from unirun.integrations.ray_serve import deployment

    serve.run(deployment("model.unirun", replicas=2, num_cpus=1), route_prefix="/")

or, from a ``serve run`` config or command line,
``serve run unirun.integrations.ray_serve:app_builder model=/models/mlp.unirun replicas=2``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

try:
    import ray
    from ray import serve
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        f"unirun.integrations.ray_serve needs Ray Serve: pip install 'unirun[ray-serve]' ({exc})"
    ) from exc

import numpy as np

from ..errors import DeviceError, OptionsError
from ..serve.handler import DEFAULT_MAX_BODY, OIPHandler, ServedModel, load_models
from ._batching import stack_requests
from .ray import assigned_cpus, resolve_device

__all__ = [
    "UnirunDeployment",
    "app_builder",
    "check_resources",
    "deployment",
    "serve_replicas",
]

log = logging.getLogger("unirun.ray_serve")

Array = np.ndarray[Any, Any]
Item = tuple[ServedModel, dict[str, Array]]
available_resources: Callable[[], dict[str, float]] = ray.available_resources
Result = dict[str, Array] | Exception
_Batch = Callable[[Any, list[Item]], Awaitable[list[Result]]]
#: ``serve.batch`` as typed as it behaves: a method over a list becomes one over an item.
batch: Callable[..., Callable[[_Batch], Callable[[Any, Item], Awaitable[Result]]]] = serve.batch


@serve.ingress()
class UnirunDeployment:
    """One replica: the models of ``source`` behind the Open Inference Protocol routes.

    Built by :func:`deployment`; the ASGI app is made on the replica (after the models load),
    so nothing heavy is pickled on the driver."""

    def __init__(
        self,
        source: str,
        name: str | None = None,
        load_args: dict[str, Any] | None = None,
        max_batch_size: int = 16,
        batch_wait_timeout_s: float = 0.005,
        max_body_bytes: int = DEFAULT_MAX_BODY,
    ) -> None:
        args = dict(load_args or {})
        args["device"] = resolve_device(args.get("device", "auto"))
        if os.path.isfile(source) and "threads" not in args:
            cpus = assigned_cpus()
            if cpus is not None:
                args["threads"] = max(1, int(cpus))
        self.handler = OIPHandler(
            load_models(source, name=name, **args), max_body_bytes=max_body_bytes
        )
        batcher: Any = self._batched  # serve.batch adds setters its type does not show
        batcher.set_max_batch_size(max_batch_size)
        batcher.set_batch_wait_timeout_s(batch_wait_timeout_s)
        self._sizes: deque[int] = deque(maxlen=1000)

    def batch_sizes(self) -> list[int]:
        """The sizes of this replica's last 1000 batches (call it through a deployment
        handle: ``handle.batch_sizes.remote().result()``)."""
        return list(self._sizes)

    @batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def _batched(self, items: list[Item]) -> list[Result]:
        self._sizes.append(len(items))
        return await asyncio.to_thread(_answer, items)

    async def _run(self, served: ServedModel, feeds: dict[str, Array]) -> dict[str, Array]:
        if not served.batchable:
            return await asyncio.wrap_future(served.model.infer_async(feeds))
        result = await self._batched((served, feeds))
        if isinstance(result, Exception):
            raise result
        return result

    def __serve_build_asgi_app__(self) -> Any:
        from ..serve.app import make_app

        return make_app(self.handler, run=self._run)

    def __del__(self) -> None:
        handler = getattr(self, "handler", None)
        if handler is not None:
            handler.close()


def _answer(items: list[Item]) -> list[dict[str, Array] | Exception]:
    results: list[dict[str, Array] | Exception | None] = [None] * len(items)
    by_model: dict[str, list[int]] = {}
    for index, (served, _) in enumerate(items):
        by_model.setdefault(served.name, []).append(index)
    for members in by_model.values():
        served = items[members[0]][0]
        answers = stack_requests(served.model, [items[i][1] for i in members])
        for i, answer in zip(members, answers, strict=True):
            results[i] = answer
    return [r if r is not None else RuntimeError("unanswered request") for r in results]


def deployment(
    source: str | os.PathLike[str],
    *,
    name: str | None = None,
    replicas: int = 1,
    num_cpus: float = 1.0,
    num_gpus: float = 0,
    max_batch_size: int = 16,
    batch_wait_timeout_s: float = 0.005,
    max_ongoing_requests: int | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    deployment_name: str = "unirun",
    **load_args: Any,
) -> Any:
    """A bound Ray Serve application serving ``source`` (an ``.onnx`` file, a saved artifact or
    a directory of them) over the Open Inference Protocol; pass it to ``serve.run``.

    ``source`` must be readable on every node that runs a replica (shared storage). Each
    replica gets ``num_cpus`` CPUs (the engine's thread count for ``.onnx`` sources) and
    ``num_gpus`` GPUs (``device="auto"`` then means ``cuda:0`` inside the replica).
    ``max_ongoing_requests`` defaults to twice ``max_batch_size`` so batches can fill.
    ``load_args`` go to :func:`unirun.load` (backend, device, precision…)."""
    options = serve.deployment(
        name=deployment_name,
        num_replicas=replicas,
        ray_actor_options={"num_cpus": num_cpus, "num_gpus": num_gpus},
        max_ongoing_requests=max_ongoing_requests or max(2 * max_batch_size, 8),
        graceful_shutdown_timeout_s=10,
        graceful_shutdown_wait_loop_s=0.5,
        # A model that does not load will not load on a retry either: fail serve.run fast.
        max_constructor_retry_count=1,
    )(UnirunDeployment)
    return options.bind(
        os.fspath(source), name, load_args, max_batch_size, batch_wait_timeout_s, max_body_bytes
    )


def app_builder(args: dict[str, str]) -> Any:
    """For ``serve run unirun.integrations.ray_serve:app_builder model=PATH [replicas=N]
    [num_cpus=X] [num_gpus=X] [max_batch_size=N] [backend=NAME] [device=DEVICE]``."""
    kwargs: dict[str, Any] = dict(args)
    try:
        source = kwargs.pop("model")
    except KeyError:
        raise OptionsError("give the model: model=PATH") from None
    numbers: dict[str, Callable[[str], Any]] = {
        "replicas": int,
        "num_cpus": float,
        "num_gpus": float,
        "max_batch_size": int,
        "batch_wait_timeout_s": float,
    }
    for key, convert in numbers.items():
        if key in kwargs:
            kwargs[key] = convert(kwargs[key])
    return deployment(source, **kwargs)


def check_resources(replicas: int, num_cpus: float, num_gpus: float) -> None:
    """Refuse replicas the cluster cannot place now: ``serve.run`` would wait for them
    forever (``ray.available_resources``, so CPUs other jobs hold do not count)."""
    resources = available_resources()
    cpus, gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
    if replicas * num_cpus > cpus:
        raise OptionsError(
            f"{replicas} replica(s) × {num_cpus} CPU need {replicas * num_cpus:g} CPUs, the Ray "
            f"cluster has {cpus:g} free; Ray Serve would wait for them forever. Use fewer "
            "replicas or a fraction of a CPU each"
        )
    if num_gpus and replicas * num_gpus > gpus:
        raise DeviceError(
            f"{replicas} replica(s) × {num_gpus} GPU need {replicas * num_gpus:g} GPUs, the Ray "
            f"cluster has {gpus:g} free; Ray Serve would wait for them forever"
        )


def serve_replicas(
    source: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    replicas: int = 1,
    num_cpus: float = 1.0,
    num_gpus: float = 0,
    address: str | None = None,
    stop: threading.Event | None = None,
    on_ready: Callable[[str], None] | None = None,
    startup_timeout_s: float = 600.0,
    **deployment_args: Any,
) -> None:
    """Run :func:`deployment` on Ray Serve until ``stop`` is set (``unirun serve --ray``).

    Connects to the cluster at ``address`` (and deletes only its ``unirun`` application at
    the end) or starts a local one (shut down again at the end);
    checks that the replicas fit before deploying, and gives up after ``startup_timeout_s``
    instead of waiting forever for resources."""
    started, deployed = not ray.is_initialized(), False
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        check_resources(replicas, num_cpus, num_gpus)
        serve.start(
            http_options={"host": host, "port": port},
            logging_config={"enable_access_log": False},
        )
        app = deployment(
            source, replicas=replicas, num_cpus=num_cpus, num_gpus=num_gpus, **deployment_args
        )
        failure: list[BaseException] = []

        def deploy() -> None:
            try:
                serve.run(app, name="unirun", route_prefix="/", blocking=False)
            except BaseException as exc:
                failure.append(exc)

        worker = threading.Thread(target=deploy, daemon=True)
        worker.start()
        deployed = True
        worker.join(startup_timeout_s)
        if worker.is_alive():
            raise OptionsError(
                f"the replicas were not running after {startup_timeout_s:g} s; the Ray cluster "
                "may lack the resources they need (see `ray status`)"
            )
        if failure:
            raise failure[0]
        if on_ready is not None:
            on_ready(f"http://{host}:{port}")
        while stop is None or not stop.is_set():
            time.sleep(0.2)
    finally:
        if started:  # our own local cluster: take all of it down
            shutdown: Callable[[], None] = serve.shutdown
            shutdown()
            ray.shutdown()
        elif deployed:  # someone else's cluster: remove only our application
            delete: Callable[[str], None] = serve.delete
            delete("unirun")
