"""Classic machine learning as users convert it: scikit-learn models through skl2onnx (a
classifier with ZipMap, one without, a regressor, a pipeline with a string categorical
feature), run through unirun.load, predict, the command line and a saved artifact, with
outputs equal to ONNX Runtime's own (``InferenceSession``); OpenVINO refuses each, typed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import unirun
from unirun import InputError, UnsupportedModelError

Array = np.ndarray[Any, Any]
Feeds = dict[str, Array]


def _iris() -> tuple[Array, Array]:
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    return x.astype(np.float32), y


def _forest_with_zipmap() -> tuple[Any, Feeds]:
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier

    x, y = _iris()
    clf = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(x, y)
    return to_onnx(clf, x[:1]), {"X": x[::10]}


def _logistic_without_zipmap() -> tuple[Any, Feeds]:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    x, y = _iris()
    clf = LogisticRegression(max_iter=1000).fit(x, y)
    return to_onnx(clf, x[:1], options={"zipmap": False}), {"X": x[::10]}


def _boosted_regressor() -> tuple[Any, Feeds]:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import GradientBoostingRegressor

    x, y = load_diabetes(return_X_y=True)
    x = x.astype(np.float32)
    reg = GradientBoostingRegressor(n_estimators=10, max_depth=2, random_state=0).fit(x, y)
    return to_onnx(reg, x[:1]), {"X": x[::40]}


def _categorical_pipeline() -> tuple[Any, Feeds]:
    """Two numeric columns and a string one, one-hot encoded: skl2onnx makes one ONNX input
    per DataFrame column (``color`` a string tensor) and a ZipMap output."""
    import pandas as pd
    from skl2onnx import to_onnx
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    n = 80
    frame = pd.DataFrame(
        {
            "a": rng.standard_normal(n).astype(np.float32),
            "b": rng.standard_normal(n).astype(np.float32),
            "color": rng.choice(["red", "green", "blue"], n),
        }
    )
    y = ((frame.a > 0) ^ (frame.color == "red")).astype(int)
    columns = ColumnTransformer(
        [
            ("num", StandardScaler(), ["a", "b"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["color"]),
        ]
    )
    pipe = Pipeline([("pre", columns), ("clf", LogisticRegression())]).fit(frame, y)
    feeds = {
        "a": frame[["a"]].to_numpy()[:6],
        "b": frame[["b"]].to_numpy()[:6],
        "color": frame[["color"]].to_numpy().astype(object)[:6],
    }
    return to_onnx(pipe, frame[:1]), feeds


BUILDERS: dict[str, Callable[[], tuple[Any, Feeds]]] = {
    "forest_zipmap": _forest_with_zipmap,
    "logistic_no_zipmap": _logistic_without_zipmap,
    "boosted_regressor": _boosted_regressor,
    "categorical_pipeline": _categorical_pipeline,
}


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Feeds]]:
    """Each model converted once, saved to a file, with feeds shaped like its training data."""
    folder = tmp_path_factory.mktemp("classic")
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's and skl2onnx's deprecation chatter
        for name, build in BUILDERS.items():
            model, feeds = build()
            path = folder / f"{name}.onnx"
            onnx.save(model, str(path))
            out[name] = (path, feeds)
    return out


def _native(path: Path, feeds: Feeds) -> dict[str, Any]:
    """ONNX Runtime's own answer."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds), strict=True))


def _assert_equal(got: dict[str, Any], want: dict[str, Any]) -> None:
    """Exactly ONNX Runtime's values: arrays equal in dtype and content, maps equal."""
    assert list(got) == list(want)
    for name, value in want.items():
        if isinstance(value, np.ndarray):
            assert got[name].dtype == value.dtype, name
            np.testing.assert_array_equal(got[name], value, err_msg=name)
        else:
            assert got[name] == value, name


@pytest.mark.parametrize("name", list(BUILDERS))
def test_load_gives_onnx_runtimes_own_outputs(
    converted: dict[str, tuple[Path, Feeds]], name: str
) -> None:
    path, feeds = converted[name]
    with unirun.load(path, backend="onnxruntime", cache=False) as m:
        got = m(feeds)
    _assert_equal(got, _native(path, feeds))


def test_the_signatures_say_what_users_get(converted: dict[str, tuple[Path, Feeds]]) -> None:
    expected = {
        "forest_zipmap": "output_label: int64[?], output_probability: seq(map(int64, float32))",
        "logistic_no_zipmap": "label: int64[?], probabilities: float32[?, 3]",
        "boosted_regressor": "variable: float32[?, 1]",
        "categorical_pipeline": (
            "output_label: int64[?], output_probability: seq(map(int64, float32))"
        ),
    }
    for name, outputs in expected.items():
        with unirun.load(converted[name][0], backend="onnxruntime", cache=False) as m:
            assert ", ".join(map(str, m.outputs)) == outputs
    with unirun.load(converted["categorical_pipeline"][0], backend="onnxruntime", cache=False) as m:
        assert [str(s) for s in m.inputs] == ["a: float32[?, 1]", "b: float32[?, 1]",
                                              "color: string[?, 1]"]  # fmt: skip
        with pytest.raises(InputError, match=r"'color' expects string\[\?, 1\], got dtype <U"):
            m({**converted["categorical_pipeline"][1], "color": np.array([["red"]])})


@pytest.mark.parametrize("name", list(BUILDERS))
def test_predict_gives_onnx_runtimes_own_outputs(
    converted: dict[str, tuple[Path, Feeds]], name: str
) -> None:
    path, feeds = converted[name]
    _assert_equal(unirun.predict(path, feeds, backend="onnxruntime"), _native(path, feeds))


@pytest.mark.parametrize("name", list(BUILDERS))
def test_a_saved_artifact_gives_onnx_runtimes_own_outputs(
    converted: dict[str, tuple[Path, Feeds]], name: str, tmp_path: Path
) -> None:
    path, feeds = converted[name]
    saved = unirun.compile(path, backend="onnxruntime", cache=False).save(tmp_path / "a.unirun")
    with unirun.load(saved) as m:
        _assert_equal(m(feeds), _native(path, feeds))


@pytest.mark.parametrize("name", list(BUILDERS))
def test_the_reference_backend_agrees(converted: dict[str, tuple[Path, Feeds]], name: str) -> None:
    """The exact reference (onnx.reference, with unirun's ZipMap) gives the same labels and
    probabilities within float32 rounding."""
    path, feeds = converted[name]
    with unirun.load(path, backend="reference", cache=False) as m:
        got = m(feeds)
    for out, want in _native(path, feeds).items():
        if isinstance(want, list):
            assert [sorted(r) for r in got[out]] == [sorted(r) for r in want]
            np.testing.assert_allclose(
                [list(r.values()) for r in got[out]], [list(r.values()) for r in want], 1e-5, 1e-6
            )
        elif want.dtype.kind == "f":
            np.testing.assert_allclose(got[out], want, rtol=1e-5, atol=1e-5)
        else:
            np.testing.assert_array_equal(got[out], want)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_openvino_refuses_each_with_the_typed_error(
    converted: dict[str, tuple[Path, Feeds]], name: str
) -> None:
    path, _ = converted[name]
    zipmap = name in ("forest_zipmap", "categorical_pipeline")
    match = (
        r"'openvino' does not carry sequence or map values .*'output_probability': "
        r"seq\(map\(int64, float32\)\); use a backend that carries them \(.*onnxruntime.*\); "
        r"for a classifier converted with skl2onnx, export it without ZipMap.*zipmap': False"
        if zipmap
        else r"OpenVINO has no conversion for operator ai\.onnx\.ml\."
    )
    with pytest.raises(UnsupportedModelError, match=match):
        unirun.load(path, backend="openvino", cache=False)


# -- the command line ---------------------------------------------------------------------------


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "PYTHONWARNINGS": "error"}
    return subprocess.run(
        [sys.executable, "-m", "unirun", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )


def _ok(*args: str | Path) -> str:
    result = _cli(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.slow
def test_cli_run_saves_onnx_runtimes_own_outputs(
    converted: dict[str, tuple[Path, Feeds]], tmp_path: Path
) -> None:
    """``unirun run --input … --output out.npz``: a ZipMap output is saved without pickles
    (one keys and one values array per row), the string feature given as a .npy file."""
    path, feeds = converted["categorical_pipeline"]
    args: list[str | Path] = []
    for name, array in feeds.items():
        file = tmp_path / f"{name}.npy"
        np.save(file, array.astype(str) if array.dtype == object else array)
        args += ["--input", f"{name}={file}"]
    out = tmp_path / "out.npz"
    _ok("run", path, "-b", "onnxruntime", *args, "--output", out)
    want = _native(path, feeds)
    with np.load(out, allow_pickle=False) as saved:
        np.testing.assert_array_equal(saved["output_label"], want["output_label"])
        for i, row in enumerate(want["output_probability"]):
            assert saved[f"output_probability.{i}.keys"].tolist() == list(row)
            np.testing.assert_array_equal(
                saved[f"output_probability.{i}.values"], list(row.values())
            )
    printed = _ok("run", path, "-b", "onnxruntime", *args)
    assert "seq(map(int64, float32))" in printed and "6 items" in printed
    summary = json.loads(_ok("run", path, "-b", "onnxruntime", *args, "--json"))
    assert summary["outputs"][1] == {
        "name": "output_probability",
        "type": "seq(map(int64, float32))",
        "items": 6,
        "present": True,
    }


@pytest.mark.slow
def test_cli_invents_categories_the_encoder_knows(
    converted: dict[str, tuple[Path, Feeds]],
) -> None:
    path, _ = converted["categorical_pipeline"]
    summary = json.loads(_ok("run", path, "-b", "onnxruntime", "--json"))
    color = next(i for i in summary["invented"] if i["name"] == "color")
    assert color["dtype"] == "string"
    assert "categories the model's encoder knows ('blue', 'green', 'red')" in color["how"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["forest_zipmap", "categorical_pipeline", "boosted_regressor"])
def test_cli_compare_checks_onnx_runtime_against_the_reference(
    converted: dict[str, tuple[Path, Feeds]], name: str
) -> None:
    path, _ = converted[name]
    report = json.loads(
        _ok("compare", path, "-b", "onnxruntime,reference", "--samples", "2", "--json")
    )
    assert report["ok"], report
    outputs = {r["output"] for r in report["results"]}
    assert outputs == set(_native(path, converted[name][1]))
    for r in report["results"]:
        assert r["total"] > 0 and r["mismatched"] == 0


@pytest.mark.slow
def test_cli_bench_times_a_zipmap_classifier(converted: dict[str, tuple[Path, Feeds]]) -> None:
    path, _ = converted["forest_zipmap"]
    rows = json.loads(
        _ok("bench", path, "-b", "onnxruntime,reference", "--runs", "5", "--warmup", "1", "--json")
    )
    assert [r["backend"] for r in rows] == ["onnxruntime", "reference"]
    assert all("error" not in r and r["runs"] == 5 for r in rows)


@pytest.mark.slow
def test_cli_inspect_says_which_engines_can_run_it(
    converted: dict[str, tuple[Path, Feeds]],
) -> None:
    path, _ = converted["forest_zipmap"]
    report = json.loads(_ok("inspect", path, "--json"))
    assert report["outputs"][1]["kind"]["kind"] == "sequence"
    verdicts = {v["backend"]: v for v in report["backends"]}
    assert verdicts["onnxruntime"]["verdict"] == "yes"
    assert verdicts["openvino"]["verdict"] == "no"
    assert any(
        "no sequence or map values (output_probability: seq(map(int64, float32)))" in note
        for note in verdicts["openvino"]["notes"]
    )
    table = _ok("inspect", path)
    assert "seq(map(int64, float32))" in table
