"""Batch inference on Ray Data with unirun.integrations.ray, on ONNX Runtime and OpenVINO.

The Predictor is first checked without Ray (chunking, padding, columns, the culprit of a failing
batch); then a real local Ray (2 CPUs, no dashboard, 2 actors of half a CPU each, so one CPU
stays free for the tasks that feed them) runs a few thousand rows: every row comes back exactly
once with the outputs of a direct call, and a poisoned row fails the job with its id.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

import unirun
from unirun.testing import embedding_model, mlp

ray = pytest.importorskip("ray", reason="the Ray Data tests need unirun[ray]")

from unirun.integrations.ray import (  # noqa: E402
    Predictor,
    predict_dataset,
    ship_artifact,
)

pytestmark = [
    pytest.mark.ray,
    pytest.mark.timeout(300),
    # Ray Data 2.60 warns about its own defaults when it creates a DataContext, and Ray Serve
    # still declares pydantic fields the v1 way; not ours to fix.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context"),
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20:ray"),
]

ROWS = 3000
X = np.random.default_rng(11).standard_normal((ROWS, 16)).astype(np.float32)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    cache = tmp_path_factory.mktemp("compile-cache")
    onnx.save(mlp(), str(root / "mlp.onnx"))
    onnx.save(embedding_model(), str(root / "embed.onnx"))
    for backend in ("onnxruntime", "openvino"):
        art = unirun.compile(mlp(), backend=backend, device="cpu", threads=1, cache=cache)
        art.save(root / f"mlp-{backend}.unirun")
    return {p.name: p for p in root.iterdir()}


# -- the Predictor on its own (no Ray) ----------------------------------------------------------


def test_predictor_respects_compiled_batch_bounds(
    files: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    bounded = unirun.compile(
        mlp(), backend="onnxruntime", shapes={"x": ((2, 16), (4, 16), (8, 16))}
    )
    with caplog.at_level("WARNING", logger="unirun.ray"):  # as in an actor of 1 CPU
        predictor = Predictor(bounded, threads=1)
    assert "compiled for all threads but this worker has 1 CPU(s)" in caplog.text
    ids = np.arange(21)
    out = predictor({"id": ids, "x": X[:21]})  # 8 + 8 + 5 rows: three engine calls
    with unirun.load(files["mlp.onnx"], backend="onnxruntime") as direct:
        np.testing.assert_allclose(out["probs"], direct(X[:21])["probs"], rtol=1e-6, atol=1e-7)
        one = predictor({"id": ids[:1], "x": X[:1]})  # under the minimum: padded, then dropped
        np.testing.assert_allclose(one["probs"], direct(X[:1])["probs"], rtol=1e-6, atol=1e-7)
    assert set(out) == {"id", "probs"} and out["id"] is ids and one["probs"].shape == (1, 4)

    fixed = Predictor(mlp(batch=4), backend="openvino")  # a model with a fixed batch of 4
    out = fixed({"x": X[:10]})
    with unirun.load(mlp(), backend="openvino") as direct:
        np.testing.assert_allclose(out["probs"], direct(X[:10])["probs"], rtol=1e-6, atol=1e-7)


def test_predictor_maps_columns_constants_and_outputs(files: dict[str, Path]) -> None:
    ids = np.arange(12).reshape(4, 3) % 50
    predictor = Predictor(
        str(files["embed.onnx"]),
        backend="openvino",
        inputs={"ids": ["t0", "t1", "t2"]},  # three scalar columns stacked into [rows, 3]
        constants={"scale": np.array([2.0], np.float32)},
        outputs={"pooled": "embedding"},
    )
    batch = {
        "key": np.array(["a", "b", "c", "d"]),
        "t0": ids[:, 0],
        "t1": ids[:, 1],
        "t2": ids[:, 2],
    }
    out = predictor(batch)
    assert list(out) == ["key", "embedding"]
    with unirun.load(files["embed.onnx"], backend="openvino") as direct:
        expected = direct({"ids": ids, "scale": np.array([2.0], np.float32)})["pooled"]
    np.testing.assert_allclose(out["embedding"], expected, rtol=1e-6, atol=1e-7)
    with pytest.raises(unirun.OptionsError, match="overwrite the column 'key'"):
        Predictor(str(files["mlp.onnx"]), outputs={"probs": "key"})({**batch, "x": X[:4]})
    with pytest.raises(unirun.OptionsError, match="reads column\\(s\\) 'x', which the batch lacks"):
        Predictor(str(files["mlp.onnx"]))({"features": X[:4]})
    with pytest.raises(unirun.OptionsError, match="no output 'logits'"):
        Predictor(str(files["mlp.onnx"]), outputs=["logits"])


def test_a_failing_batch_names_the_row(files: dict[str, Path]) -> None:
    predictor = Predictor(
        str(files["embed.onnx"]),
        backend="onnxruntime",
        constants={"scale": np.ones(1, np.float32)},
        id_column="doc",
    )
    ids = np.ones((6, 3), np.int64)
    ids[4, 1] = 999  # no such token: ONNX Runtime's Gather refuses it
    with pytest.raises(unirun.InferenceError) as info:
        predictor({"doc": np.arange(100, 106), "ids": ids})
    message = str(info.value)
    assert "row 4 of a 6-row batch (doc=104) failed" in message
    assert "999" in message and "Gather" in message
    ragged = np.empty(3, dtype=object)
    ragged[:] = [np.zeros(16, np.float32), np.zeros(15, np.float32), np.zeros(16, np.float32)]
    with pytest.raises(unirun.InputError, match=r"row 1 of a 3-row batch .* shape \(15,\)"):
        Predictor(str(files["mlp.onnx"]), backend="openvino")({"x": ragged})


# -- on a real local Ray ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    cache = str(tmp_path_factory.mktemp("worker-cache"))
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"UNIRUN_CACHE_DIR": cache}},
    )
    yield
    ray.shutdown()


def _dataset(x: np.ndarray[Any, Any]) -> Any:
    items = [{"id": i, "x": row} for i, row in enumerate(x)]
    return ray.data.from_items(items, override_num_blocks=6)


@pytest.mark.parametrize(
    ("backend", "source", "ordered"),
    [
        ("onnxruntime", "shipped artifact", True),
        ("openvino", "artifact path", False),
    ],
)
def test_every_row_comes_back_once_with_direct_outputs(
    cluster: None, files: dict[str, Path], backend: str, source: str, ordered: bool
) -> None:
    artifact = files[f"mlp-{backend}.unirun"]
    model = ship_artifact(artifact) if source == "shipped artifact" else str(artifact)
    result = predict_dataset(
        _dataset(X),
        model,
        actors=2,
        num_cpus=0.5,
        batch_size=256,
        preserve_order=ordered,
        id_column="id",
    ).take_all()
    ids = np.array([row["id"] for row in result])
    assert len(ids) == ROWS and set(ids.tolist()) == set(range(ROWS))  # each row exactly once
    if ordered:
        assert ids.tolist() == list(range(ROWS))
    got = np.stack([row["probs"] for row in result])
    with unirun.load(artifact) as direct:
        np.testing.assert_allclose(got, direct(X[ids])["probs"], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_a_poisoned_row_fails_the_job_naming_it(
    cluster: None, files: dict[str, Path], backend: str
) -> None:
    if backend == "onnxruntime":  # a token id past the vocabulary: the engine refuses the row
        ids = np.tile(np.arange(4, dtype=np.int64), (1600, 1))
        ids[1234, 2] = 999
        items = [{"id": i, "ids": row} for i, row in enumerate(ids)]
        model, args = str(files["embed.onnx"]), {"constants": {"scale": np.ones(1, np.float32)}}
        expected = "(id=1234) failed"
    else:  # a row whose tensor has another shape than its neighbours'
        items = [{"id": i, "x": X[i] if i != 1234 else X[i, :15]} for i in range(400 * 4)]
        model, args = str(files["mlp.onnx"]), {}
        expected = "(id=1234) has input 'x' (column 'x') of shape (15,)"
    ds = ray.data.from_items(items, override_num_blocks=4)
    # Ray wraps the unirun error in its own exception, keeping the message.
    with pytest.raises(Exception, match=re.escape(expected)):
        predict_dataset(
            ds, model, actors=1, num_cpus=0.5, backend=backend, id_column="id", **args
        ).materialize()


def test_a_pool_that_would_hang_is_refused(cluster: None, files: dict[str, Path]) -> None:
    ds = _dataset(X[:10])
    with pytest.raises(unirun.OptionsError, match="reserve all 2 CPUs"):
        predict_dataset(ds, str(files["mlp.onnx"]), actors=2, num_cpus=1)
    with pytest.raises(unirun.DeviceError, match="need 1 GPUs, the Ray cluster has 0"):
        predict_dataset(ds, str(files["mlp.onnx"]), num_cpus=0.5, num_gpus=1)
    from unirun.integrations import ray_serve  # serve.run would wait forever for these too

    with pytest.raises(unirun.OptionsError, match=r"need 3 CPUs, the Ray cluster has [\d.]+ free"):
        ray_serve.serve_replicas(files["mlp.onnx"], replicas=3, num_cpus=1, startup_timeout_s=5)
    with pytest.raises(unirun.DeviceError, match="need 2 GPUs, the Ray cluster has 0"):
        ray_serve.check_resources(2, 0.5, 1)


def test_ray_serve_app_builder_for_serve_run(files: dict[str, Path]) -> None:
    from ray.serve import Application

    from unirun.integrations.ray_serve import app_builder

    app = app_builder({"model": str(files["mlp.onnx"]), "replicas": "2", "num_cpus": "0.5"})
    assert isinstance(app, Application)
    with pytest.raises(unirun.OptionsError, match="give the model: model=PATH"):
        app_builder({"replicas": "2"})
