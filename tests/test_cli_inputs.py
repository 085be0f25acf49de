"""Command-line values of the commands that run a model (``--input``, ``--shape``, ``--seed``,
``-o``): a bad one exits 2 before anything is compiled or loaded. Property-based and bounded
fuzz tests cover the parsers: they return a value or raise ``typer.BadParameter``, nothing
else, whatever the text or the bytes of an ``.npy`` file."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unirun.cli._inputs import MAX_DIM, parse_shapes, parse_value, read_inputs, read_npy
from unirun.inputs import Value

MLP = Path(__file__).resolve().parents[1] / "examples" / "models" / "mlp.onnx"


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "PYTHONWARNINGS": "error"}
    return subprocess.run(
        [sys.executable, "-m", "unirun", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def one_line_error(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and text in result.stderr, result.stderr


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _huge_header_npy(path: Path) -> Path:
    """A valid .npy header that claims 10**12 float32 elements, followed by 16 bytes."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)}
    )
    path.write_bytes(header.getvalue() + bytes(16))
    return path


def _nothing_compiled(cache: Path) -> bool:
    return not (cache / "artifacts").exists() or not any((cache / "artifacts").iterdir())


@pytest.mark.parametrize("command", ["run", "bench", "compare"])
def test_a_negative_seed_exits_2(command: str, cache_dir: Path) -> None:
    one_line_error(cli(command, MLP, "--seed", "-1"), 2, "--seed")
    assert _nothing_compiled(cache_dir)


def test_an_npy_whose_header_claims_a_huge_array_exits_2_before_loading(
    tmp_path: Path, cache_dir: Path
) -> None:
    path = _huge_header_npy(tmp_path / "huge.npy")
    result = cli("run", MLP, "--input", f"x={path}")
    one_line_error(result, 2, "float32[1000000, 1000000] (4,000,000,000,000 bytes)")
    assert "holds 16 bytes of data: truncated or corrupt" in result.stderr
    assert _nothing_compiled(cache_dir)
    pickled = tmp_path / "objects.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    one_line_error(cli("run", MLP, "-i", f"x={pickled}"), 2, "unirun never unpickles")


def test_an_output_in_a_missing_folder_fails_before_the_run(cache_dir: Path) -> None:
    result = cli("run", MLP, "-o", "/missing/dir/out.npz")
    one_line_error(result, 2, "the folder /missing/dir does not exist")
    assert _nothing_compiled(cache_dir)
    one_line_error(cli("bench", MLP, "--plot", "/missing/dir/b.png"), 2, "/missing/dir")


def test_literal_values_and_files_mix(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.full((2, 16), 0.25, np.float32))
    summary = json.loads(
        cli("run", MLP, "-b", "onnxruntime", "-i", f"x={tmp_path / 'x.npy'}", "--json").stdout
    )
    assert summary["invented"] == [] and summary["outputs"][0]["shape"] == [2, 4]
    nested = json.loads(
        cli("run", MLP, "-b", "onnxruntime", "-i", f"x={[[0.5] * 16] * 3}", "--json").stdout
    )
    assert nested["outputs"][0]["shape"] == [3, 4]
    one_line_error(cli("run", MLP, "-i", "x=[[1, 2], [3]]"), 2, "must be rectangular")
    one_line_error(cli("run", MLP, "-i", "=1"), 2, "the input name is missing")


# -- the parsers, property-based -----------------------------------------------------------


def _accepts_or_refuses(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except typer.BadParameter:
        return None


@FUZZ
@given(st.text(max_size=60))
def test_shape_text_is_parsed_or_refused_with_a_usage_error(text: str) -> None:
    parsed = _accepts_or_refuses(parse_shapes, [text])
    if parsed is not None:
        ((name, _),) = parsed.items()
        assert text.startswith(f"{name}=")


@FUZZ
@given(
    st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=8),
    st.lists(st.integers(0, MAX_DIM), min_size=1, max_size=6),
)
def test_a_written_shape_reads_back(name: str, dims: list[int]) -> None:
    assert parse_shapes([f"{name}={'x'.join(map(str, dims))}"]) == {name: tuple(dims)}
    low = [max(d - 1, 0) for d in dims]
    ranged = f"{name}={'x'.join(map(str, low))}:{'x'.join(map(str, dims))}:" + "x".join(
        str(d + 1) for d in dims
    )
    if all(d < MAX_DIM for d in dims):
        assert parse_shapes([ranged])[name][1] == tuple(dims)


def test_shape_sizes_outside_the_range_are_refused() -> None:
    for bad in ("x=1x-3", f"x={MAX_DIM + 1}", "x=1x3:2x3:1x3", "x=1x3:1x3x4:1x3", "x=١x٣"):
        with pytest.raises(typer.BadParameter):
            parse_shapes([bad])


@FUZZ
@given(st.text(max_size=80))
def test_a_literal_is_a_value_nothing_or_a_usage_error(text: str) -> None:
    value = _accepts_or_refuses(parse_value, text)
    assert value is None or isinstance(value, Value)


@FUZZ
@given(
    st.recursive(
        st.integers(-(2**62), 2**62) | st.floats(allow_nan=False) | st.booleans(),
        lambda inner: st.lists(inner, min_size=1, max_size=3),
        max_leaves=12,
    )
)
def test_json_literals_read_as_arrays(data: Any) -> None:
    value = _accepts_or_refuses(parse_value, json.dumps(data))
    if value is not None:  # ragged lists are refused
        np.testing.assert_array_equal(value.array, np.asarray(data))


@pytest.fixture(scope="module")
def npy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("npy")


_ARRAYS = st.sampled_from(["<f4", "<i8", "|u1", "|b1", ">f8", "<f2"]).flatmap(
    lambda dt: st.lists(st.integers(0, 5), max_size=3).map(
        lambda shape: np.arange(int(np.prod(shape)), dtype=np.int64).astype(dt).reshape(shape)
    )
)


@FUZZ
@given(array=_ARRAYS, cut=st.integers(0, 200), flips=st.lists(st.integers(0, 255), max_size=4))
def test_npy_bytes_are_read_exactly_or_refused(
    npy_dir: Path, array: np.ndarray[Any, Any], cut: int, flips: list[int]
) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array)
    data = bytearray(buffer.getvalue())
    path = npy_dir / "fuzz.npy"
    path.write_bytes(bytes(data))
    np.testing.assert_array_equal(read_npy(path), array)
    for i, flip in enumerate(flips):  # damage the header
        data[(cut + 7 * i) % len(data)] ^= flip or 1
    path.write_bytes(bytes(data[: len(data) - cut % 3]))
    got = _accepts_or_refuses(read_npy, path)
    assert got is None or isinstance(got, np.ndarray)


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_the_reader(npy_dir: Path, blob: bytes) -> None:
    path = npy_dir / "blob.npy"
    path.write_bytes(np.lib.format.magic(1, 0) + blob)
    got = _accepts_or_refuses(read_inputs, [f"x={path}"])
    assert got is None or isinstance(got["x"], np.ndarray)
    archive = npy_dir / "blob.npz"
    archive.write_bytes(blob)
    assert _accepts_or_refuses(read_inputs, [str(archive)]) in (None, {})
