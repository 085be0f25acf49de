"""Batch inference on Ray Data: ``Dataset.map_batches(Predictor, ...)`` or :func:`predict_dataset`.

Needs the ``unirun[ray]`` extra (``ray[data]``). Each actor loads the model once: a saved
artifact when given (nothing recompiles), else the ``.onnx`` through unirun's compile cache,
which builds once per node under a file lock. Ray's resources become unirun's: an actor with
``num_gpus`` runs on ``cuda:0`` (Ray hides the other cards), and the engine gets as many threads
as the actor has CPUs, so N actors do not oversubscribe a machine.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import tarfile
import tempfile
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

try:
    import ray
    from ray.data import ActorPoolStrategy, Dataset
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        f"unirun.integrations.ray needs Ray Data: pip install 'unirun[ray]' ({exc})"
    ) from exc

from ..api import load
from ..artifact import MANIFEST_NAME, Artifact
from ..errors import DeviceError, InferenceError, InputError, OptionsError, UnirunError
from ..model import Model
from ._batching import row_bounds, run_rows

__all__ = [
    "Predictor",
    "ShippedArtifact",
    "assigned_cpus",
    "check_resources",
    "predict_dataset",
    "resolve_device",
    "ship_artifact",
]

log = logging.getLogger("unirun.ray")

#: Ray leaves these untyped; typed aliases keep mypy --strict meaningful around them.
cluster_resources: Callable[[], dict[str, float]] = ray.cluster_resources

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class ShippedArtifact:
    """A saved artifact packed (tar) for the object store; see :func:`ship_artifact`."""

    name: str
    data: bytes


def ship_artifact(path: str | os.PathLike[str]) -> Any:
    """Put a saved artifact directory into Ray's object store and return the ``ObjectRef``.

    Pass the ref as the model of :class:`Predictor` when the workers cannot read the path
    (no shared storage); each actor unpacks it into a temporary directory. Keep the ref
    alive in the driver until the job ends."""
    root = Path(path)
    Artifact.open(root)  # refuse a damaged artifact here, not in every actor
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(root, arcname=".")
    return ray.put(ShippedArtifact(root.name, buffer.getvalue()))


def resolve_device(device: str) -> str:
    """``"auto"`` inside a Ray worker: ``cuda:0`` when Ray assigned it a GPU (Ray sets
    ``CUDA_VISIBLE_DEVICES``, so the first assigned card is always 0), else ``cpu``."""
    if device != "auto":
        return device
    gpus = ray.get_gpu_ids() if ray.is_initialized() else []
    if not gpus:
        return "cpu"
    if os.environ.get("RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"):
        return f"cuda:{int(gpus[0])}"
    return "cuda:0"


def assigned_cpus() -> float | None:
    """The CPUs Ray assigned to the current actor or task; None in the driver."""
    if not ray.is_initialized():
        return None
    try:
        assigned: Callable[[], dict[str, float]] = ray.get_runtime_context().get_assigned_resources
        cpus = assigned().get("CPU")
    except Exception:  # the driver has no assigned resources
        return None
    return None if cpus is None else float(cpus)


def load_in_worker(
    source: Any,
    *,
    device: str = "auto",
    backend: str = "auto",
    threads: int | None = None,
    **load_args: Any,
) -> Model:
    """Load ``source`` the way a Ray actor or replica should (see the module docstring)."""
    if isinstance(source, ray.ObjectRef):
        source = ray.get(source)  # Ray does not resolve refs nested in constructor arguments
    if threads is None:
        cpus = assigned_cpus()
        threads = max(1, int(cpus)) if cpus is not None else None
    if isinstance(source, ShippedArtifact):
        directory = _unpack(source)
        try:
            model = load_in_worker(
                directory, device=device, backend=backend, threads=threads, **load_args
            )
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        weakref.finalize(model, shutil.rmtree, directory, True)  # the files live as long
        return model
    if isinstance(source, Artifact):
        source = source.directory
    if isinstance(source, (str, os.PathLike)) and (Path(source) / MANIFEST_NAME).is_file():
        built = Artifact.open(source).manifest.options.threads
        if threads is not None and (built is None or built > threads):
            log.warning(
                "the artifact %s was compiled for %s threads but this worker has %s CPU(s); "
                "compile it with threads=%s to avoid oversubscribing the machine",
                source,
                built or "all",
                threads,
                threads,
            )
        return load(source, backend=backend, device=device, **load_args)
    return load(
        source, backend=backend, device=resolve_device(device), threads=threads, **load_args
    )


def _unpack(shipped: ShippedArtifact) -> str:
    target = tempfile.mkdtemp(prefix=f"unirun-{shipped.name}-")
    with tarfile.open(fileobj=io.BytesIO(shipped.data), mode="r") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(target, filter="data")
        else:  # pragma: no cover - Python < 3.10.12
            tar.extractall(target)  # our own archive, from ship_artifact
    return target


class Predictor:
    """A callable class for ``ray.data.Dataset.map_batches(Predictor, batch_format="numpy",
    fn_constructor_kwargs={"model": ...})``: one loaded model per actor.

    - ``model``: an ``.onnx`` path, a saved artifact directory, an ``ObjectRef`` from
      :func:`ship_artifact` or of ONNX bytes, or anything :func:`unirun.load` takes.
    - ``inputs``: model input → batch column (or a list of scalar columns stacked along the
      last axis); by default each input reads the column of its own name.
    - ``outputs``: the outputs to return, as a list of names or a mapping output → new column
      (default: every output under its own name); an output must have one row per input row.
    - ``constants``: inputs that are the same for every row (not batched).
    - ``keep_inputs``: keep the input columns in the result (default: drop them); every other
      column is always kept, so an id column travels with its row.
    - ``max_rows``: at most this many rows per engine call (also bounded by the model's
      compiled batch bounds; a chunk under the minimum is padded and the padding dropped).
    - ``id_column``: a column whose value names a failing row in the error.

    A batch that fails is retried row by row to find the culprit, and the error (the same
    unirun error type) names the row, its id and its input. Nothing is dropped silently.
    """

    def __init__(
        self,
        model: Any,
        *,
        inputs: Mapping[str, str | Sequence[str]] | None = None,
        outputs: Sequence[str] | Mapping[str, str] | None = None,
        constants: Mapping[str, Any] | None = None,
        keep_inputs: bool = False,
        max_rows: int | None = None,
        id_column: str | None = None,
        device: str = "auto",
        backend: str = "auto",
        threads: int | None = None,
        **load_args: Any,
    ) -> None:
        self.model = load_in_worker(
            model, device=device, backend=backend, threads=threads, **load_args
        )
        names = [s.name for s in self.model.inputs]
        self.constants = {k: np.asarray(v) for k, v in (constants or {}).items()}
        unknown = [n for n in [*self.constants, *(inputs or {})] if n not in names]
        if unknown:
            raise OptionsError(
                f"the model has no input {', '.join(map(repr, unknown))}; its inputs are "
                f"{', '.join(map(repr, names))}"
            )
        mapping = dict(inputs or {})
        self.columns: dict[str, str | list[str]] = {
            n: (c if isinstance(c, str) else list(c))
            for n, c in ((n, mapping.get(n, n)) for n in names if n not in self.constants)
        }
        outs = [s.name for s in self.model.outputs]
        if outputs is None:
            self.output_columns = {n: n for n in outs}
        elif isinstance(outputs, Mapping):
            self.output_columns = dict(outputs)
        else:
            self.output_columns = {n: n for n in outputs}
        missing = [n for n in self.output_columns if n not in outs]
        if missing:
            raise OptionsError(
                f"the model has no output {', '.join(map(repr, missing))}; its outputs are "
                f"{', '.join(map(repr, outs))}"
            )
        self.keep_inputs = keep_inputs
        self.max_rows = max_rows
        self.id_column = id_column
        self.bounds = row_bounds(self.model, self.columns)

    def __call__(self, batch: dict[str, Array]) -> dict[str, Array]:
        rows = {name: self._column(batch, name, col) for name, col in self.columns.items()}
        try:
            results = run_rows(self.model, rows, self.constants, self.bounds, self.max_rows)
        except UnirunError as exc:
            raise self._blame(batch, rows, exc) from exc
        consumed = set()
        if not self.keep_inputs:
            for col in self.columns.values():
                consumed.update([col] if isinstance(col, str) else col)
        out = {k: v for k, v in batch.items() if k not in consumed}
        for name, column in self.output_columns.items():
            if column in out:
                raise OptionsError(
                    f"output {name!r} would overwrite the column {column!r}; rename it with "
                    f"outputs={{{name!r}: 'new_name'}}"
                )
            out[column] = results[name]
        return out

    def _column(self, batch: Mapping[str, Array], name: str, column: str | list[str]) -> Array:
        wanted = [column] if isinstance(column, str) else column
        absent = [c for c in wanted if c not in batch]
        if absent:
            raise OptionsError(
                f"input {name!r} reads column(s) {', '.join(map(repr, absent))}, which the "
                f"batch lacks (it has {', '.join(map(repr, batch))}); map the input with "
                "inputs={'input': 'column'}"
            )
        if not isinstance(column, str):
            return np.stack([np.asarray(batch[c]) for c in column], axis=-1)
        value = np.asarray(batch[column])
        if value.dtype != object or not len(value) or not isinstance(value[0], np.ndarray):
            return value
        first = value[0].shape
        for index, item in enumerate(value):  # variable-shaped tensor column: must stack
            if np.shape(item) != first:
                raise InputError(
                    f"{self._row(batch, index)} has input {name!r} (column {column!r}) of shape "
                    f"{np.shape(item)}, but row 0 has {first}; rows of one batch must agree",
                    name,
                )
        return np.stack(list(value))

    def _blame(
        self, batch: Mapping[str, Array], rows: Mapping[str, Array], exc: Exception
    ) -> Exception:
        count = len(next(iter(rows.values()))) if rows else 0
        failed: list[tuple[int, Exception]] = []
        for index in range(count):
            one = {k: v[index : index + 1] for k, v in rows.items()}
            try:
                run_rows(self.model, one, self.constants, self.bounds)
            except UnirunError as row_exc:
                failed.append((index, row_exc))
        if not failed or (len(failed) == count > 1):
            return _retyped(exc, f"a batch of {count} rows failed: {exc}")
        index, first = failed[0]
        shown = "; ".join(
            f"{k}: {v[index].dtype}{list(v[index].shape)} {np.array2string(v[index], threshold=6)}"
            for k, v in rows.items()
        )
        more = f" ({len(failed) - 1} more rows of this batch fail too)" if len(failed) > 1 else ""
        message = f"{self._row(batch, index)} failed: {first}; its inputs were {shown}{more}"
        return _retyped(first, message)

    def _row(self, batch: Mapping[str, Array], index: int) -> str:
        count = len(next(iter(batch.values()))) if batch else 0
        where = f"row {index} of a {count}-row batch"
        if self.id_column is not None and self.id_column in batch:
            value = batch[self.id_column][index]
            where += f" ({self.id_column}={getattr(value, 'item', lambda: value)()!r})"
        return where


def _retyped(exc: Exception, message: str) -> Exception:
    """The same unirun error type with a message that says where it happened."""
    if isinstance(exc, InputError):
        return InputError(message, exc.name)
    try:
        return type(exc)(message)
    except TypeError:  # an error type whose constructor wants more
        return InferenceError(message)


def check_resources(actors: int, num_cpus: float, num_gpus: float) -> None:
    """Refuse an actor pool the cluster cannot run instead of letting Ray hang.

    Ray waits forever when the actors reserve every CPU (the tasks that read and prepare
    the data can then never run) or ask for GPUs the cluster does not have."""
    resources = cluster_resources()
    cpus, gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
    if actors * num_cpus >= cpus:
        raise OptionsError(
            f"{actors} actor(s) × {num_cpus} CPU would reserve all {cpus:g} CPUs of the Ray "
            "cluster, and Ray Data would then hang (no CPU left to read the data); use fewer "
            "actors or a fraction of a CPU each (num_cpus=0.5)"
        )
    if num_gpus and actors * num_gpus > gpus:
        raise DeviceError(
            f"{actors} actor(s) × {num_gpus} GPU need {actors * num_gpus:g} GPUs, the Ray "
            f"cluster has {gpus:g}; Ray would wait for them forever"
        )


def predict_dataset(
    ds: Dataset,
    model: Any,
    *,
    actors: int | tuple[int, int] = 1,
    num_cpus: float = 1.0,
    num_gpus: float = 0,
    batch_size: int = 256,
    preserve_order: bool = False,
    accelerator_type: str | None = None,
    **predictor_args: Any,
) -> Dataset:
    """``ds`` with the model's outputs added as columns, run by a pool of :class:`Predictor`
    actors (``actors``: a size, or ``(min, max)`` to autoscale).

    Checks the cluster first and raises instead of hanging when the pool would take every CPU
    or GPUs that are not there. ``preserve_order=True`` keeps the rows in input order (set on
    the dataset's execution options). Other keyword arguments go to :class:`Predictor`; a
    model given as bytes or an ``onnx.ModelProto`` travels through the object store.
    Ray Data shows its progress bars as usual."""
    if not ray.is_initialized():
        ray.init()
    low, high = (actors, actors) if isinstance(actors, int) else actors
    check_resources(high, num_cpus, num_gpus)
    if isinstance(model, (bytes, bytearray)):
        model = ray.put(bytes(model))
    elif type(model).__name__ == "ModelProto":
        model = ray.put(model.SerializeToString())
    elif isinstance(model, Artifact):
        model = str(model.directory)
    elif isinstance(model, os.PathLike):
        model = os.fspath(model)
    compute = (
        ActorPoolStrategy(size=low)
        if low == high
        else ActorPoolStrategy(min_size=low, max_size=high)
    )
    result = ds.map_batches(
        Predictor,
        fn_constructor_kwargs={"model": model, **predictor_args},
        compute=compute,
        num_cpus=num_cpus,
        num_gpus=num_gpus or None,
        accelerator_type=accelerator_type,
        batch_size=batch_size,
        batch_format="numpy",
    )
    if preserve_order:
        result.context.execution_options.preserve_order = True
    return result
