"""unirun reports the precision OpenVINO's compiled model computes in, on any CPU.

Expectations come from OpenVINO itself (OPTIMIZATION_CAPABILITIES and the precision its own API
compiles in), never from the CPU the tests were written on. The substitution path (fp16 asked,
fp32 or bf16 granted) runs everywhere: in a subprocess whose oneDNN is limited to AVX-512
without fp16 (``ONEDNN_MAX_CPU_ISA=AVX512_CORE``, which OpenVINO's CPU plugin honours: FP16
leaves OPTIMIZATION_CAPABILITIES and an f16 hint compiles to bf16), and in-process on CPUs
without fp16 arithmetic (AVX2-only x86 grants fp32).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov
import pytest

import unirun
from unirun import OptionsError
from unirun.testing import conv_net, mlp

HINT = {"fp32": "f32", "fp16": "f16", "bf16": "bf16"}
PRECISION = {v: k for k, v in HINT.items()}
CAPABILITY = {"fp32": "FP32", "fp16": "FP16", "bf16": "BF16"}
X86 = platform.machine().lower() in ("x86_64", "amd64")


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def check_precision_report(precision: str, cache: str) -> dict[str, Any]:
    """Everything this module promises, checked against what OpenVINO says in this process;
    returns what OpenVINO said."""
    core = ov.Core()
    caps = list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    model = conv_net(size=16)
    native = core.compile_model(
        core.read_model(model.SerializeToString()),
        "CPU",
        {"INFERENCE_PRECISION_HINT": HINT[precision]},
    )
    granted = PRECISION[native.get_property("INFERENCE_PRECISION_HINT").get_type_name()]
    # OpenVINO grants a precision the device lists, and never one it does not.
    assert (granted == precision) == (CAPABILITY[precision] in caps), (caps, granted)
    handler = _Records()
    logger = logging.getLogger("unirun")
    logger.addHandler(handler)
    try:
        with unirun.load(model, backend="openvino", device="cpu", precision=precision) as m:
            assert m.precision == granted, (m.precision, granted)
            assert m.options.precision == precision  # the request stays on record
            manifest = m.artifact.manifest
            assert manifest.computed_precision == (None if granted == precision else granted)
            x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
            got = m(x)["logits"]
        with unirun.load(model, backend="openvino", device="cpu") as exact:
            assert exact.precision == "fp32"
            want = exact(x)["logits"]
    finally:
        logger.removeHandler(handler)
    warned = [
        r.getMessage()
        for r in handler.records
        if r.levelno == logging.WARNING and "not the requested" in r.getMessage()
    ]
    if granted == precision:
        assert not warned, warned
        return {"caps": caps, "granted": granted}
    assert len(warned) == 1, warned
    assert f"computes in {granted} on cpu, not the requested {precision}" in warned[0]
    if granted == "fp32":
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(OptionsError, match=f"computes in {granted}.*strict_precision=True"):
        unirun.load(
            model, backend="openvino", device="cpu", precision=precision, strict_precision=True
        )
    # A saved artifact says the same when it is loaded again.
    with unirun.load(model, backend="openvino", device="cpu", precision=precision) as m:
        path = m.artifact.save(Path(cache) / "reduced.ov.unirun")
    with unirun.load(path) as again:
        assert again.precision == granted
    with pytest.raises(OptionsError, match="strict_precision"):
        unirun.load(path, strict_precision=True)
    return {"caps": caps, "granted": granted}


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_model_precision_is_what_openvino_computes(precision: str, tmp_path: Path) -> None:
    check_precision_report(precision, str(tmp_path))


@pytest.mark.slow
@pytest.mark.skipif(not X86, reason="ONEDNN_MAX_CPU_ISA names x86 instruction sets")
def test_fp16_on_a_cpu_without_fp16_is_reported_and_refused_when_strict(tmp_path: Path) -> None:
    """The same checks in a process whose oneDNN may use AVX-512 at most (no fp16 units): the
    fp16 request is granted as bf16 or fp32, and unirun says so."""
    code = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('precision_checks', {__file__!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        f"print(json.dumps(module.check_precision_report('fp16', {str(tmp_path)!r})))\n"
    )
    env = {
        **os.environ,
        "ONEDNN_MAX_CPU_ISA": "AVX512_CORE",
        "UNIRUN_CACHE_DIR": str(tmp_path / "cache"),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert "FP16" not in found["caps"]
    assert found["granted"] in ("bf16", "fp32")


def test_auto_shows_the_device_openvino_chose() -> None:
    """``device="auto"``: the model says which device AUTO picked, and what it computes in
    there (AUTO itself does not report a precision; its devices do)."""
    core = ov.Core()
    with unirun.load(mlp(), backend="openvino", device="auto") as m:
        chosen = m.artifact.manifest.extra["execution_devices"]
        assert chosen and set(chosen) <= set(core.available_devices)
        assert m.device_label == f"auto → {', '.join(chosen)}"
        assert m.precision == "fp32"
    with unirun.load(mlp(), backend="openvino", device="cpu") as m:
        assert m.device_label == "cpu"  # no choice made: nothing to show


def test_loading_an_auto_artifact_says_it_compiles(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    art = unirun.compile(mlp(), backend="openvino", device="auto", cache=False)
    path = art.save(tmp_path / "auto.ov.unirun")
    with caplog.at_level(logging.INFO, "unirun.openvino"), unirun.load(path) as m:
        assert m.device_label.startswith("auto → ")
    notes = [r.getMessage() for r in caplog.records if r.name == "unirun.openvino"]
    assert any("compiled for OpenVINO AUTO, which cannot export" in n for n in notes), notes
    assert all(r.levelno < logging.WARNING for r in caplog.records if r.name == "unirun.openvino")
