"""`unirun serve` answers the Open Inference Protocol v2, driven by the official tritonclient,
from one process and from Ray Serve replicas (same checks, same answers as direct inference).

The servers listen on 127.0.0.1 only, on free ports; every request loop is bounded and every
server is shut down by its fixture. The Ray Serve mode starts a local Ray limited to 2 CPUs
with no dashboard; its 2 replicas take half a CPU each, leaving one free.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

import unirun
from unirun.serve import OIPHandler
from unirun.serve.protocol import ProtocolError, decode_request, encode_response
from unirun.testing import embedding_model, mlp, multi_io
from unirun.testing.models import passthrough

pytest.importorskip("starlette", reason="the serving tests need unirun[serve]")
pytest.importorskip("uvicorn", reason="the serving tests need unirun[serve]")
httpclient = pytest.importorskip("tritonclient.http", reason="tritonclient[http] is a dev dep")
from tritonclient.utils import InferenceServerException  # noqa: E402

from unirun.serve.local import BackgroundServer  # noqa: E402

pytestmark = [
    pytest.mark.serve,
    pytest.mark.timeout(300),
    # Ray Serve 2.60 still declares pydantic fields the v1 way; not ours to fix.
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20:ray"),
]

ROWS = np.random.default_rng(7).standard_normal((64, 16)).astype(np.float32)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository: artifacts for both engines, and an .onnx compiled when served."""
    root = tmp_path_factory.mktemp("repository")
    cache = tmp_path_factory.mktemp("serve-cache")
    builds = {
        "mlp_ort": (mlp(), "onnxruntime"),
        "mlp_ov": (mlp(), "openvino"),
        "embed_ov": (embedding_model(), "openvino"),
        "text": (passthrough("string"), "onnxruntime"),
        "half": (passthrough("float16"), "onnxruntime"),
    }
    for name, (proto, backend) in builds.items():
        art = unirun.compile(proto, backend=backend, device="cpu", cache=cache)
        art.save(root / f"{name}.unirun")
    onnx.save(multi_io(), str(root / "multi.onnx"))
    return root


@pytest.fixture(scope="module")
def direct(repo: Path) -> Iterator[dict[str, unirun.Model]]:
    models = {p.name.split(".")[0]: unirun.load(p) for p in sorted(repo.glob("*.unirun"))}
    models["multi"] = unirun.load(repo / "multi.onnx", backend="onnxruntime")
    yield models
    for model in models.values():
        model.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Served:
    def __init__(self, mode: str, address: str, handle: Any = None) -> None:
        self.mode, self.address, self.handle = mode, address, handle


@pytest.fixture(
    scope="module", params=["one-process", pytest.param("ray-serve", marks=pytest.mark.ray)]
)
def server(request: pytest.FixtureRequest, repo: Path, tmp_path_factory: Any) -> Iterator[Served]:
    if request.param == "one-process":
        handler = OIPHandler.from_path(repo, backend="auto", device="cpu")
        with BackgroundServer(handler) as bg:
            yield Served("one-process", bg.address)
        return
    ray = pytest.importorskip("ray", reason="the Ray Serve mode needs unirun[ray-serve]")
    from ray import serve

    from unirun.integrations.ray_serve import serve_replicas

    cache = str(tmp_path_factory.mktemp("replica-cache"))
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"UNIRUN_CACHE_DIR": cache}},
    )
    port, stop, ready = _free_port(), threading.Event(), threading.Event()
    failed: list[BaseException] = []

    def run() -> None:  # what `unirun serve --ray` runs, on a thread so the test can stop it
        try:
            serve_replicas(
                repo,
                port=port,
                replicas=2,
                num_cpus=0.5,
                device="cpu",
                batch_wait_timeout_s=0.02,
                stop=stop,
                on_ready=lambda url: ready.set(),
                startup_timeout_s=240,
            )
        except BaseException as exc:
            failed.append(exc)
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert ready.wait(270) and not failed, failed
        yield Served("ray-serve", f"127.0.0.1:{port}", serve.get_app_handle("unirun"))
    finally:
        stop.set()
        thread.join(120)
        ray.shutdown()


@pytest.fixture
def client(server: Served) -> Iterator[Any]:
    c = httpclient.InferenceServerClient(server.address, network_timeout=60.0)
    yield c
    c.close()


def _input(name: str, array: np.ndarray[Any, Any], datatype: str, binary: bool = True) -> Any:
    item = httpclient.InferInput(name, list(array.shape), datatype)
    item.set_data_from_numpy(array, binary_data=binary)
    return item


# -- metadata -----------------------------------------------------------------------------------


def test_health_metadata_and_config(client: Any, server: Served) -> None:
    assert client.is_server_live() and client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta["name"] == "unirun" and "binary_tensor_data" in meta["extensions"]
    mlp_meta = client.get_model_metadata("mlp_ov")
    assert mlp_meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 16]}]
    assert mlp_meta["outputs"] == [{"name": "probs", "datatype": "FP32", "shape": [-1, 4]}]
    assert mlp_meta["parameters"]["backend"] == "openvino"
    assert client.get_model_metadata("mlp_ort", "1")["parameters"]["backend"] == "onnxruntime"
    embed = client.get_model_metadata("embed_ov")
    assert [i["datatype"] for i in embed["inputs"]] == ["INT64", "FP32"]
    assert client.is_model_ready("multi") and not client.is_model_ready("nosuch")
    assert not client.is_model_ready("multi", "7")
    config = client.get_model_config("multi")
    assert [i["data_type"] for i in config["input"]] == ["TYPE_FP32", "TYPE_BOOL"]
    index = {m["name"] for m in client.get_model_repository_index()}
    assert index == {"mlp_ort", "mlp_ov", "embed_ov", "text", "half", "multi"}


# -- answers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["mlp_ort", "mlp_ov"])
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_answers_equal_direct_inference(
    client: Any, direct: dict[str, unirun.Model], model: str, binary: bool
) -> None:
    x = ROWS[:5]
    result = client.infer(
        model,
        [_input("x", x, "FP32", binary)],
        outputs=[httpclient.InferRequestedOutput("probs", binary_data=binary)],
        request_id="r-42",
    )
    assert result.get_response()["id"] == "r-42"
    np.testing.assert_array_equal(result.as_numpy("probs"), direct[model](x)["probs"])


def test_several_inputs_and_outputs_of_other_types(
    client: Any, direct: dict[str, unirun.Model]
) -> None:
    x = ROWS[:2, :3].copy()
    mask = np.array([[True, False, True], [False, False, True]])
    result = client.infer("multi", [_input("x", x, "FP32", False), _input("mask", mask, "BOOL")])
    expected = direct["multi"]({"x": x, "mask": mask})
    for name in ("masked", "total", "flag"):
        np.testing.assert_array_equal(result.as_numpy(name), expected[name])
    ids = np.array([[1, 2, 3, 0], [4, 5, 0, 0]], np.int64)
    scale = np.array([0.5], np.float32)
    result = client.infer("embed_ov", [_input("ids", ids, "INT64"), _input("scale", scale, "FP32")])
    expected = direct["embed_ov"]({"ids": ids, "scale": scale})
    np.testing.assert_array_equal(result.as_numpy("pooled"), expected["pooled"])
    np.testing.assert_array_equal(result.as_numpy("count"), expected["count"])


def test_bytes_and_fp16_round_trip(client: Any) -> None:
    text = np.array([[b"a", "é".encode(), b""], [b"xyz", "日本".encode(), b"q"]], dtype=object)
    result = client.infer("text", [_input("x", text, "BYTES")])
    assert result.as_numpy("y").tolist() == text.tolist()
    with pytest.raises(InferenceServerException, match="'x': element 1 is not UTF-8"):
        client.infer("text", [_input("x", np.array([[b"a", b"\xff", b"c"]] * 2), "BYTES")])
    half = ROWS[:2, :3].astype(np.float16)
    result = client.infer("half", [_input("x", half, "FP16")])
    np.testing.assert_array_equal(result.as_numpy("y"), half)
    with pytest.raises(InferenceServerException) as info:  # FP16 cannot travel as JSON
        client.infer(
            "half",
            [_input("x", half, "FP16")],
            outputs=[httpclient.InferRequestedOutput("y", binary_data=False)],
        )
    assert info.value.status() == "400" and "'y'" in info.value.message()


def test_concurrent_clients(server: Served, direct: dict[str, unirun.Model]) -> None:
    """8 clients × 12 requests at once; every answer matches its own request."""
    failures: list[str] = []
    model = direct["mlp_ort"]

    def worker(k: int) -> None:
        c = httpclient.InferenceServerClient(server.address, network_timeout=60.0)
        try:
            for j in range(12):
                x = ROWS[(k * 12 + j) % 60 : (k * 12 + j) % 60 + 1 + j % 3]
                got = c.infer("mlp_ort", [_input("x", x, "FP32")]).as_numpy("probs")
                # Replicas stack concurrent requests into one call: the last bit may differ.
                if not np.allclose(got, model(x)["probs"], rtol=1e-6, atol=1e-7):
                    failures.append(f"client {k} request {j}")
        except Exception as exc:
            failures.append(f"client {k}: {exc!r}")
        finally:
            c.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures and not any(t.is_alive() for t in threads), failures
    if server.mode == "ray-serve":  # @serve.batch did stack requests on some replica
        sizes = [s for _ in range(6) for s in server.handle.batch_sizes.remote().result()]
        assert sizes and max(sizes) > 1, sizes


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (
            [("x", ROWS[:2].astype(np.float64), "FP64")],
            "unexpected datatype FP64 for inference input 'x', expecting FP32",
        ),
        ([("x", ROWS[:2, :15].copy(), "FP32")], "unexpected shape [2, 15] for inference input 'x'"),
        ([("y", ROWS[:2], "FP32")], "unexpected inference input 'y'"),
        ([], "missing inference input 'x'"),
    ],
    ids=["dtype", "shape", "name", "missing"],
)
@pytest.mark.parametrize("model", ["mlp_ort", "mlp_ov"])
def test_bad_requests_get_400_naming_the_tensor(
    client: Any, model: str, inputs: list[tuple[str, Any, str]], message: str
) -> None:
    with pytest.raises(InferenceServerException) as info:
        client.infer(model, [_input(n, a, d) for n, a, d in inputs])
    assert info.value.status() == "400"
    assert message in info.value.message()


def _raw(
    address: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    request = urllib.request.Request(f"http://{address}{path}", data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read()), dict(exc.headers)


def test_errors_are_the_protocol_error_json(server: Served) -> None:
    bad = {"inputs": [{"name": "x", "shape": [2, 16], "datatype": "FP32", "data": [1.0] * 31}]}
    status, body, _ = _raw(server.address, "/v2/models/mlp_ov/infer", json.dumps(bad).encode())
    assert status == 400
    assert body == {"error": "input 'x': shape [2, 16] holds 32 elements, data has 31"}
    status, body, _ = _raw(server.address, "/v2/models/mlp_ov/infer", b"{not json")
    assert status == 400 and body["error"].startswith("the request is not valid JSON")
    status, body, _ = _raw(server.address, "/v2/models/nosuch/infer", json.dumps(bad).encode())
    assert status == 404 and "unknown model 'nosuch'" in body["error"]
    status, body, _ = _raw(server.address, "/v2/nowhere")
    assert (status, body) == (404, {"error": "no route /v2/nowhere"})
    status, body, _ = _raw(server.address, "/v2/models/mlp_ov/infer")  # GET
    assert status == 405 and set(body) == {"error"}
    status, body, _ = _raw(server.address, "/v2/models/mlp_ov/versions/2")
    assert status == 404 and "no version '2'" in body["error"]


def test_compressed_requests_and_responses(client: Any, direct: dict[str, unirun.Model]) -> None:
    x = ROWS[:3]
    for request_c, response_c in [("gzip", "deflate"), ("deflate", "gzip")]:
        result = client.infer(
            "mlp_ov",
            [_input("x", x, "FP32")],
            request_compression_algorithm=request_c,
            response_compression_algorithm=response_c,
        )
        np.testing.assert_array_equal(result.as_numpy("probs"), direct["mlp_ov"](x)["probs"])


# -- one process only ------------------------------------------------------------------------------


def test_request_size_limit_gives_413(repo: Path) -> None:
    handler = OIPHandler({"mlp": unirun.load(repo / "mlp_ort.unirun")}, max_body_bytes=2048)
    with BackgroundServer(handler) as bg:
        small = {"inputs": [{"name": "x", "shape": [1, 16], "datatype": "FP32", "data": [0] * 16}]}
        status, _, _ = _raw(bg.address, "/v2/models/mlp/infer", json.dumps(small).encode())
        assert status == 200
        big = ROWS.tobytes()  # 4 kB of binary data
        head = json.dumps(
            {
                "inputs": [
                    {
                        "name": "x",
                        "shape": [64, 16],
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": len(big)},
                    }
                ]
            }
        ).encode()
        headers = {"Inference-Header-Content-Length": str(len(head))}
        status, body, _ = _raw(bg.address, "/v2/models/mlp/infer", head + big, headers)
        assert status == 413 and "2048-byte limit" in body["error"]
        bomb = gzip.compress(json.dumps({**small, "pad": "0" * 10_000}).encode())
        status, body, _ = _raw(
            bg.address, "/v2/models/mlp/infer", bomb, {"Content-Encoding": "gzip"}
        )
        assert status == 413 and "decompressed" in body["error"]


def test_unirun_serve_command_serves_and_stops_on_sigterm(
    repo: Path, direct: dict[str, unirun.Model], tmp_path: Path
) -> None:
    env = {**os.environ, "UNIRUN_CACHE_DIR": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "unirun", "serve", str(repo / "mlp_ov.unirun"), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the server prints its address once it listens
        assert "listening on http://127.0.0.1:" in line, line + process.stderr.read()
        address = line.rsplit("//", 1)[1].strip()
        c = httpclient.InferenceServerClient(address, network_timeout=60.0)
        try:
            assert c.get_model_metadata("mlp_ov")["name"] == "mlp_ov"
            got = c.infer("mlp_ov", [_input("x", ROWS[:4], "FP32")]).as_numpy("probs")
        finally:
            c.close()
        np.testing.assert_array_equal(got, direct["mlp_ov"](ROWS[:4])["probs"])
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
        # uvicorn finishes the shutdown (models closed), then re-raises the signal it caught.
        assert process.returncode in (0, -signal.SIGTERM), err
        assert time.monotonic() - started < 30 and "Traceback" not in err, err
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)


# -- protocol details without a server ---------------------------------------------------------


def test_binary_layout_and_its_errors() -> None:
    x = np.arange(6, dtype=np.int32).reshape(2, 3)
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "a",
                    "shape": [2, 3],
                    "datatype": "INT32",
                    "parameters": {"binary_data_size": 24},
                },
                {
                    "name": "b",
                    "shape": [2],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": 9},
                },
                {"name": "c", "shape": [2, 2], "datatype": "UINT8", "data": [[1, 2], [3, 4]]},
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    strings = b"\x01\x00\x00\x00a\x00\x00\x00\x00"
    decoded = decode_request(head + x.tobytes() + strings, str(len(head)))
    np.testing.assert_array_equal(decoded.inputs["a"], x)
    assert decoded.inputs["b"].tolist() == [b"a", b""] and decoded.binary_default
    assert decoded.inputs["c"].dtype == np.uint8 and decoded.inputs["c"].tolist() == [
        [1, 2],
        [3, 4],
    ]
    with pytest.raises(ProtocolError, match="6 bytes of binary data that no input claims"):
        decode_request(head + x.tobytes() + strings + b"extra!", str(len(head)))
    with pytest.raises(ProtocolError, match="'a': binary_data_size 24 runs past"):
        decode_request(head + x.tobytes()[:10], str(len(head)))
    with pytest.raises(ProtocolError, match="Inference-Header-Content-Length"):
        decode_request(head, "lots")
    overflow = {"inputs": [{"name": "c", "shape": [1], "datatype": "UINT8", "data": [300]}]}
    with pytest.raises(ProtocolError, match="'c': a value is outside the range of UINT8"):
        decode_request(json.dumps(overflow).encode(), None)
    body, headers = encode_response(
        model_name="m", model_version="1", request_id=None, outputs=[("o", x, True)]
    )
    length = int(headers["inference-header-content-length"])
    assert json.loads(body[:length])["outputs"][0]["parameters"] == {"binary_data_size": 24}
    assert body[length:] == x.astype("<i4").tobytes()


def test_neither_unirun_nor_its_help_imports_ray_or_a_web_framework() -> None:
    code = (
        "import sys, contextlib, io, unirun, unirun.serve, unirun.integrations, unirun.cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    unirun.cli.main(['serve', '--help'])\n"
        "print(sorted(m for m in ('ray', 'starlette', 'uvicorn', 'fastapi', 'tritonclient')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
