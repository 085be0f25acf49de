"""Device tensors through ONNX Runtime's I/O binding (``_iobinding.py``).

The binding code runs here on a real CPU session: pointers bound with ``bind_input``, outputs
allocated by ONNX Runtime and owned by the returned tensors, numpy-less types as raw bits,
strings, empty tensors, the copy of an output that is a feed. The CUDA half — torch CUDA
tensors into a ``cuda`` session, ``outputs="device"`` read back through DLPack — needs an
onnxruntime-gpu build and a GPU, and skips without them (``bench/gpu_check.py`` runs it)."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import unirun
from unirun.device import Device
from unirun.device_tensor import DeviceTensor
from unirun.dtypes import DType
from unirun.testing import conv_net, multi_io, passthrough
from unirun_onnxruntime import _iobinding
from unirun_onnxruntime._specs import spec_of as _spec
from unirun_onnxruntime.backend import OnnxRuntimeBackend

CPU = Device("cpu")
HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


def _session(model: Any) -> Any:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _run(session: Any, feeds: dict[str, Any], on_device: bool = True) -> list[DeviceTensor]:
    inputs = [_spec(a) for a in session.get_inputs()]
    outputs = [_spec(a) for a in session.get_outputs()]
    tensors = {name: DeviceTensor.from_numpy(array) for name, array in feeds.items()}
    return _iobinding.run(
        ort, session, tensors, on_device=on_device, device=CPU, inputs=inputs, outputs=outputs
    )


def test_bound_pointers_give_what_run_gives() -> None:
    model = conv_net(size=8)
    session = _session(model)
    x = np.random.default_rng(0).standard_normal((3, 3, 8, 8)).astype(np.float32)
    (want,) = session.run(None, {"image": x})
    for on_device in (True, False):
        (got,) = _run(session, {"image": x}, on_device)
        assert (got.shape, got.dtype, got.device) == ((3, 10), DType.FLOAT32, CPU)
        np.testing.assert_array_equal(got.numpy(), want)


def test_outputs_own_their_memory_across_calls() -> None:
    session = _session(multi_io())
    mask = np.array([[True, False, True], [False, True, True]])
    first = _run(session, {"x": np.ones((2, 3), np.float32), "mask": mask})
    kept = [t.numpy().copy() for t in first]
    second = _run(session, {"x": np.full((2, 3), 5, np.float32), "mask": ~mask})
    for tensor, value in zip(first, kept, strict=True):
        np.testing.assert_array_equal(tensor.numpy(), value)  # not overwritten by the 2nd call
    assert {t.pointer for t in first}.isdisjoint(t.pointer for t in second)
    assert float(first[1].numpy()) == 4.0 and float(second[1].numpy()) == 10.0


@pytest.mark.parametrize("dtype", [DType.BFLOAT16, DType.FLOAT8_E4M3FN, DType.FLOAT16, DType.BOOL])
def test_types_numpy_lacks_are_bound_by_their_onnx_code(dtype: DType) -> None:
    session = _session(passthrough(dtype))
    x = np.arange(6).reshape(2, 3).astype(np.float32).astype(dtype.numpy)
    for on_device in (True, False):
        identity, flat = _run(session, {"x": x}, on_device)
        assert identity.dtype is dtype
        assert identity.numpy().tobytes() == x.tobytes()
        assert flat.numpy().tobytes() == x.tobytes() and flat.shape == (6,)


def test_empty_tensors() -> None:
    session = _session(conv_net(size=8))
    (out,) = _run(session, {"image": np.zeros((0, 3, 8, 8), np.float32)})
    assert out.shape == (0, 10) and out.numpy().shape == (0, 10)


def test_string_tensors_are_refused_with_the_way_out() -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["s"], ["t"])],
        "strings",
        [helper.make_tensor_value_info("s", TensorProto.STRING, [2])],
        [helper.make_tensor_value_info("t", TensorProto.STRING, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    words = np.array(["device", "tensors"], dtype=object)
    with pytest.raises(unirun.UnsupportedModelError, match=r"string tensors \(s, t\).*'numpy'"):
        _run(_session(model), {"s": words}, on_device=False)


def test_a_copy_in_new_memory_for_an_output_that_is_a_feed() -> None:
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    tensor = DeviceTensor.from_numpy(array)
    copied = _iobinding._copy(ort, tensor, CPU)
    assert copied.pointer != tensor.pointer and copied.shape == (3, 4)
    np.testing.assert_array_equal(copied.numpy(), array)


def test_device_io_is_declared_for_cuda_only() -> None:
    from unirun._admission import capabilities_problem

    caps = OnnxRuntimeBackend.capabilities
    assert caps.device_io == ("cuda",) and capabilities_problem(caps) is None


def test_the_cpu_provider_refuses_device_tensors_and_device_outputs(tmp_path: Any) -> None:
    on_gpu = DeviceTensor(0x1000, (1, 3, 8, 8), DType.FLOAT32, Device("cuda", 0))
    with unirun.load(conv_net(size=8), backend="onnxruntime") as model:
        with pytest.raises(unirun.InputError, match=r"'image' lives on a device \(cuda:0\)"):
            model(on_gpu)
        with pytest.raises(unirun.OptionsError, match="returns host memory only"):
            model(np.zeros((1, 3, 8, 8), np.float32), outputs="device")


# -- on a GPU ------------------------------------------------------------------------------------

needs_cuda = pytest.mark.skipif(
    not HAS_CUDA,
    reason="needs an onnxruntime-gpu build with the CUDA execution provider and an NVIDIA GPU "
    f"(this onnxruntime {ort.__version__} has {', '.join(ort.get_available_providers())})",
)


def _torch_cuda() -> Any:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("this torch build has no CUDA")
    return torch


@needs_cuda
def test_torch_cuda_tensors_in_and_device_outputs_out() -> None:  # pragma: no cover - GPU
    torch = _torch_cuda()
    proto = conv_net(size=8)
    x = np.random.default_rng(1).standard_normal((4, 3, 8, 8)).astype(np.float32)
    (want,) = _session(proto).run(None, {"image": x})
    with unirun.load(proto, backend="onnxruntime", device="cuda:0") as model:
        side = torch.cuda.Stream()
        with torch.cuda.stream(side):  # produced on another stream: unirun must wait for it
            feed = torch.from_numpy(x).cuda(non_blocking=True) * 1.0
        out = model({"image": feed}, outputs="device")["logits"]
        later = model({"image": feed * 0.0}, outputs="device")["logits"]
        assert str(out.device) == "cuda:0" and out.shape == (4, 10)
        np.testing.assert_allclose(torch.from_dlpack(out).cpu().numpy(), want, rtol=1e-4, atol=1e-4)
        assert later.pointer != out.pointer  # each call's outputs are its own
        host = model({"image": feed})["logits"]  # device in, numpy out
        np.testing.assert_allclose(host, want, rtol=1e-4, atol=1e-4)


@needs_cuda
def test_an_output_that_is_its_input_is_copied_on_the_device() -> None:  # pragma: no cover
    torch = _torch_cuda()
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"])],
        "echo",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
            helper.make_tensor_value_info("r", TensorProto.FLOAT, [2, 3]),
        ],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    feed = torch.arange(6, dtype=torch.float32, device="cuda").reshape(2, 3) - 2
    with unirun.load(proto, backend="onnxruntime", device="cuda:0") as model:
        out = model(feed, outputs="device")
    assert out["x"].pointer != feed.data_ptr()
    assert torch.equal(torch.from_dlpack(out["x"]), feed)


@needs_cuda
def test_bf16_device_tensors() -> None:  # pragma: no cover - GPU
    torch = _torch_cuda()
    x = torch.arange(6, device="cuda").reshape(2, 3).to(torch.bfloat16)
    with unirun.load(passthrough("bfloat16"), backend="onnxruntime", device="cuda:0") as model:
        out = model(x, outputs="device")
        host = model(x)
    assert torch.equal(torch.from_dlpack(out["y"]), x)
    assert host["y"].dtype == np.dtype(ml_dtypes.bfloat16)
