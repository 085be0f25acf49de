"""Reduced precision in the core: calibration data, the CPU question, metrics, the int8 forms
on the reference evaluator (a real engine that runs Q/DQ exactly), and the checks every load
makes. Engine-specific int8/fp16 tests live with the plugins."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import unirun
from unirun import InputError, OptionsError
from unirun._reference import ReferenceBackend
from unirun.backend import Int8Form, Probe
from unirun.quantize import (
    BOUND_COSINE,
    MIN_SAMPLES,
    Agreement,
    Calibration,
    _cpu,
    compare_outputs,
    compute_precision,
    within_bound,
)
from unirun.quantize._calibration import digest
from unirun.quantize._emit import emit
from unirun.testing import conv_net, multi_io, outlier_inputs, outlier_mlp

Array = np.ndarray[Any, Any]


def _opset19(model: Any) -> Any:
    """onnx.reference runs QuantizeLinear/DequantizeLinear from opset 19 on."""
    model.opset_import[0].version = 19
    return model


def _cnn() -> Any:
    return _opset19(conv_net(size=8))


def _images(count: int, seed: int = 0, size: int = 8) -> list[dict[str, Array]]:
    rng = np.random.default_rng(seed)
    return [
        {"image": rng.standard_normal((2, 3, size, size)).astype(np.float32)} for _ in range(count)
    ]


# -- calibration data ---------------------------------------------------------------------------


def test_calibration_reads_an_iterable_once_and_keeps_labels() -> None:
    feeds = _images(MIN_SAMPLES)
    data = Calibration.of(f for f in feeds)  # a generator is read once
    spec = unirun.source.graph_inputs(conv_net(size=8))
    bound = data.bind(spec)
    assert len(bound) == MIN_SAMPLES and bound[3]["image"] is feeds[3]["image"]
    fit, held = data.split(bound)
    assert (len(fit), len(held)) == (13, 3) and held[-1] is bound[-1]
    assert Calibration.of(data) is data


def test_calibration_directory_of_npz_and_npy(tmp_path: Path) -> None:
    feeds = _images(MIN_SAMPLES)
    for i, feed in enumerate(feeds):
        if i % 2:
            np.savez(tmp_path / f"s{i:02d}.npz", **feed)
        else:
            np.save(tmp_path / f"s{i:02d}.npy", feed["image"])
    (tmp_path / "README.txt").write_text("ignored")
    data = Calibration.of(tmp_path)
    assert data.labels[:2] == ("s00.npy", "s01.npz") and len(data.samples) == MIN_SAMPLES
    bound = data.bind(unirun.source.graph_inputs(conv_net(size=8)))
    assert digest(bound) == digest(feeds)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ({"image": np.zeros(3)}, "not dict; wrap one feed in a list"),
        (np.zeros((16, 3)), "not ndarray"),
        (3, "not int"),
    ],
)
def test_calibration_refuses_what_is_not_a_set_of_feeds(value: Any, match: str) -> None:
    with pytest.raises(InputError, match=match):
        Calibration.of(value)


def test_calibration_directory_problems_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        Calibration.of(tmp_path / "absent")
    with pytest.raises(InputError, match=r"holds no \.npy or \.npz files"):
        Calibration.of(tmp_path)
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(InputError, match=r"calibration file .*bad\.npy cannot be read"):
        Calibration.of(tmp_path)


def test_too_few_samples_and_wrong_arity_name_the_problem() -> None:
    specs = unirun.source.graph_inputs(multi_io())
    with pytest.raises(InputError, match="has 3 samples; int8 needs at least 16"):
        Calibration.of(_images(3)).bind(specs)
    bad = [(np.zeros((2, 3), np.float32),)] * MIN_SAMPLES
    with pytest.raises(InputError, match="calibration sample #0: 1 positional arrays, but"):
        Calibration.of(bad).bind(specs)


def test_digest_follows_the_data() -> None:
    feeds = _images(MIN_SAMPLES)
    changed = [dict(f) for f in feeds]
    changed[5] = {"image": feeds[5]["image"] + 1e-3}
    assert digest(feeds) == digest([dict(f) for f in feeds])
    assert digest(feeds) != digest(changed)
    assert digest(feeds) != digest(feeds[::-1])


# -- the CPU question ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "machine", "expected"),
    [
        ("fpu sse avx2 fma avx512f avx512_vnni", "x86_64", True),
        ("fpu avx2 avx_vnni", "x86_64", True),
        ("avx2 amx_tile amx_int8", "x86_64", True),
        ("fpu sse4_2 avx avx2 fma f16c", "x86_64", False),  # an AVX2-only EPYC
        ("fp asimd asimddp", "aarch64", True),
        ("fp asimd", "aarch64", False),
    ],
)
def test_int8_dot_product_from_flags(flags: str, machine: str, expected: bool) -> None:
    assert _cpu.from_flags(flags.split(), machine).dot_product is expected


def test_a_onednn_isa_cap_below_vnni_counts_as_none(monkeypatch: pytest.MonkeyPatch) -> None:
    _cpu.cpu_int8.cache_clear()
    try:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
        assert _cpu.cpu_int8().dot_product is not True
        _cpu.cpu_int8.cache_clear()
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
        free = _cpu.cpu_int8()
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
        _cpu.cpu_int8.cache_clear()
        assert free.dot_product == _cpu.cpu_int8().dot_product  # a cap above VNNI changes nothing
    finally:
        _cpu.cpu_int8.cache_clear()


# -- metrics ------------------------------------------------------------------------------------


def test_agreement_reports_cosine_relative_and_top1() -> None:
    want = np.array([[1.0, 5.0, 2.0], [3.0, 0.0, 1.0]], np.float32)
    got = want + np.array([[0.0, 0.1, 0.0], [0.0, 0.0, 3.5]], np.float32)
    meter = Agreement()
    meter.add(got, want)
    s = meter.summary()
    assert s["relative"] == pytest.approx(3.5 / 5.0) and s["max_abs"] == pytest.approx(3.5)
    assert s["top1"] == 0.5  # the second row's argmax moved
    assert 0.8 < s["cosine"] < BOUND_COSINE and not within_bound(s)
    same = compare_outputs(
        [{"y": want, "k": np.array([1, 2])}], [{"y": want, "k": np.array([1, 3])}]
    )
    assert same["y"]["cosine"] == pytest.approx(1.0) and within_bound(same["y"])
    assert same["k"] == {"match": 0.5} and within_bound(same["k"])  # integers: reported only
    nan = Agreement()
    nan.add(np.array([np.nan, 1.0]), np.array([1.0, 1.0]))
    assert nan.summary()["cosine"] is None and not within_bound(nan.summary())


# -- fp16: what the engine's optimized graph computes in ----------------------------------------


def _conv_graph(x_type: int, casts: bool) -> Any:
    nodes = []
    x = "x"
    if casts:  # what ONNX Runtime writes around a node without an fp16 kernel
        nodes.append(helper.make_node("Cast", ["x"], ["x32"], to=TensorProto.FLOAT))
        x = "x32"
    nodes.append(helper.make_node("Conv", [x, "w"], ["y"]))
    w = numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32 if casts else np.float16), "w")
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", x_type, [1, 1, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [w],
    )
    return helper.make_model(graph)


def test_compute_precision_reads_the_casts_the_engine_inserted() -> None:
    assert compute_precision(_conv_graph(TensorProto.FLOAT16, casts=True)) == (
        "fp32",
        {"fp16": 0, "fp32": 1},
    )
    assert compute_precision(_conv_graph(TensorProto.FLOAT16, casts=False))[0] == "fp16"


# -- the weights-only form (no calibration tool needed) -----------------------------------------


def test_weights_form_keeps_float_math_and_shrinks_weights(tmp_path: Path) -> None:
    model = _opset19(outlier_mlp(features=64, hidden=64))  # two 64x64 MatMul weights: 4096 elements
    params = emit(
        Int8Form.WEIGHTS, model, ranges=None, reduce_range=False, source=model, out=tmp_path / "w"
    )
    quantized = onnx.load(str(tmp_path / "w"))
    onnx.checker.check_model(quantized, full_check=True)
    assert params["quantized_weights"] == 2
    ops = [n.op_type for n in quantized.graph.node]
    assert ops.count("DequantizeLinear") == 2 and "QuantizeLinear" not in ops
    int8 = [t for t in quantized.graph.initializer if t.data_type == TensorProto.INT8]
    assert sorted(t.name for t in int8) == ["w1_int8", "w2_int8"]
    feeds = [
        {"x": np.random.default_rng(i).standard_normal((4, 64)).astype(np.float32)}
        for i in range(3)
    ]
    with (
        unirun.load(model, backend="reference") as ref,
        unirun.load(quantized, backend="reference") as q,
    ):
        summary = compare_outputs([q(f) for f in feeds], [ref(f) for f in feeds])
    assert within_bound(summary["y"]), summary


# -- int8 through the core, on the reference evaluator ------------------------------------------


class _RefInt8(ReferenceBackend):
    """The reference evaluator declaring TensorRT's form: it runs Q/DQ exactly as written."""

    name = "refint8"
    capabilities = dataclasses.replace(
        ReferenceBackend.capabilities,
        precisions=("fp32", "int8"),
        int8_forms={"cpu": (Int8Form.STATIC_SYMMETRIC,)},
    )


class _CompileOnlyInt8(_RefInt8):
    name = "compileonlyint8"

    def probe(self) -> Probe:
        return Probe(False, "running needs the FakeOS", "1.0", can_compile=True)


@pytest.fixture
def refint8() -> Iterator[str]:
    pytest.importorskip("onnxruntime.quantization", reason="int8 calibration needs onnxruntime")
    unirun.register_backend(_RefInt8())
    unirun.register_backend(_CompileOnlyInt8())
    try:
        yield "refint8"
    finally:
        unirun.unregister_backend("refint8")
        unirun.unregister_backend("compileonlyint8")


def test_int8_requests_that_cannot_work_are_options_errors(refint8: str) -> None:
    model = _cnn()
    with pytest.raises(OptionsError, match="calibration= is only used with precision='int8'"):
        unirun.compile(model, backend=refint8, calibration=_images(MIN_SAMPLES))
    with pytest.raises(OptionsError, match="needs calibration= data"):
        unirun.compile(model, backend=refint8, precision="int8")
    with pytest.raises(OptionsError, match="does not support precision 'int8'"):
        unirun.compile(model, backend="reference", precision="int8", calibration=_images(16))


@pytest.mark.slow
def test_symmetric_form_has_zero_zero_points_and_stays_accurate(refint8: str) -> None:
    model = _opset19(conv_net(size=16))
    art = unirun.compile(model, backend=refint8, precision="int8", calibration=_images(20, size=16))
    record = art.manifest.extra["quantization"]
    assert record["form"] == "qdq-symmetric" and record["verified"] is True
    assert record["calibration_samples"] == 16 and record["held_back_samples"] == 4
    assert record["parameters"]["activations"].startswith("int8 symmetric")
    assert within_bound(record["accuracy"]["logits"]), record["accuracy"]
    payload = onnx.load(str(art.path("model.onnx")))
    inits = {t.name: t for t in payload.graph.initializer}
    zero_points = [inits[n.input[2]] for n in payload.graph.node if n.op_type == "QuantizeLinear"]
    assert zero_points and all(
        z.data_type == TensorProto.INT8 and not numpy_helper.to_array(z).any() for z in zero_points
    )


def test_bad_calibration_sample_names_the_sample_and_input(refint8: str) -> None:
    feeds = _images(MIN_SAMPLES)
    feeds[7] = {"image": feeds[7]["image"].astype(np.float64)}
    with pytest.raises(InputError, match=r"calibration sample #7: input 'image' expects") as err:
        unirun.compile(_cnn(), backend=refint8, precision="int8", calibration=feeds)
    assert err.value.name == "image"
    feeds[7] = {"picture": feeds[8]["image"]}
    with pytest.raises(InputError, match=r"sample #7: missing input 'image'.*'picture'"):
        unirun.compile(_cnn(), backend=refint8, precision="int8", calibration=feeds)
    feeds[7] = {"image": feeds[8]["image"][:, :2]}
    with pytest.raises(
        InputError, match=r"sample #7: input 'image' expects .*shape \(2, 2, 8, 8\)"
    ):
        unirun.compile(_cnn(), backend=refint8, precision="int8", calibration=feeds)


def test_a_model_outside_the_bound_warns_and_strict_refuses(
    refint8: str, caplog: pytest.LogCaptureFixture
) -> None:
    model, feeds = _opset19(outlier_mlp()), outlier_inputs(20)
    with caplog.at_level(logging.WARNING, logger="unirun"):
        art = unirun.compile(model, backend=refint8, precision="int8", calibration=feeds)
    assert "fails the int8 checks" in caplog.text and "output 'y' mean cosine" in caplog.text
    assert not within_bound(art.manifest.extra["quantization"]["accuracy"]["y"])
    with pytest.raises(OptionsError, match=r"output 'y' mean cosine .*strict_precision=True"):
        unirun.compile(
            model, backend=refint8, precision="int8", calibration=feeds, strict_precision=True
        )


def test_unverified_where_the_backend_cannot_run(
    refint8: str, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    with caplog.at_level(logging.WARNING, logger="unirun"):
        art = unirun.compile(
            _cnn(), backend="compileonlyint8", precision="int8", calibration=_images(16)
        )
    record = art.manifest.extra["quantization"]
    assert record["verified"] is False and record["accuracy"] == {}
    assert "was not verified" in caplog.text
    saved = json.loads((art.save(tmp_path / "a") / "manifest.json").read_text(encoding="utf-8"))
    assert saved["extra"]["quantization"]["form"] == "qdq-symmetric"
    bad = _images(16)
    bad[2] = {"image": np.zeros((2, 3, 9, 8), np.float32)}
    with pytest.raises(InputError, match="sample #2"):  # still checked, by the reference model
        unirun.compile(_cnn(), backend="compileonlyint8", precision="int8", calibration=bad)
