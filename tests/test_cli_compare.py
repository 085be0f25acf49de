"""The arithmetic behind ``unirun compare``: errors, tolerances, NaN and non-float outputs."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from unirun.cli._agree import TOLERANCES, compare_arrays, output_scale, tolerance_for


def test_tolerances_loosen_with_the_precision() -> None:
    (r32, a32), (r16, a16), (rbf, abf) = (TOLERANCES[p] for p in ("fp32", "fp16", "bf16"))
    assert r32 < r16 < rbf and a32 < a16 <= abf


def test_within_tolerance_passes_and_reports_the_errors() -> None:
    want = np.array([1.0, -2.0, 0.0, 100.0], np.float32)
    got = want + np.array([1e-6, -1e-6, 5e-6, 5e-3], np.float32)
    r = compare_arrays(got, want, rtol=1e-4, atol=1e-5)
    assert r["ok"] and r["mismatched"] == 0 and r["total"] == 4
    assert r["max_abs"] == pytest.approx(5e-3, rel=1e-3)
    assert r["max_rel"] == pytest.approx(5e-5, rel=1e-2)  # 0.0 is below atol: not in max_rel


def test_out_of_tolerance_fails_and_points_at_the_worst_element() -> None:
    want = np.zeros((2, 3), np.float32)
    got = want.copy()
    got[1, 2] = 0.5
    r = compare_arrays(got, want, rtol=1e-2, atol=1e-3)
    assert not r["ok"] and r["mismatched"] == 1 and r["worst_index"] == [1, 2]
    assert r["max_abs"] == 0.5


def test_nan_matches_nan_only() -> None:
    want = np.array([np.nan, 1.0, np.inf], np.float32)
    assert compare_arrays(want.copy(), want, 1e-4, 1e-5)["ok"]
    r = compare_arrays(np.array([1.0, 1.0, np.inf], np.float32), want, 1e-4, 1e-5)
    assert not r["ok"] and r["mismatched"] == 1 and r["max_abs"] == np.inf


def test_integer_and_bool_outputs_must_be_equal() -> None:
    want = np.array([1, 2, 3], np.int64)
    assert compare_arrays(want.copy(), want, 1.0, 1.0)["ok"]
    r = compare_arrays(np.array([1, 2, 4], np.int64), want, 1.0, 1.0)
    assert not r["ok"] and r["mismatched"] == 1 and r["max_abs"] == 1.0
    flags = np.array([True, False])
    assert not compare_arrays(~flags, flags, 1.0, 1.0)["ok"]


def test_shape_and_dtype_mismatches_fail() -> None:
    want = np.zeros((2, 2), np.float32)
    problem = compare_arrays(np.zeros((4,), np.float32), want, 1, 1)["problem"]
    assert problem == "shape [4], baseline [2, 2]"
    r = compare_arrays(np.zeros((2, 2), np.float16), want, 1, 1)
    assert not r["ok"] and "dtype float16" in r["problem"]


def test_bfloat16_outputs_compare_as_numbers() -> None:
    want = np.array([1.0, 2.0], np.float32).astype(ml_dtypes.bfloat16)
    got = np.array([1.0, 2.015625], np.float32).astype(ml_dtypes.bfloat16)  # one bf16 step
    assert compare_arrays(got, want, *TOLERANCES["bf16"])["ok"]
    assert not compare_arrays(got, want, *TOLERANCES["fp32"])["ok"]


def test_default_absolute_tolerance_follows_the_output_scale() -> None:
    """One element in a million off by 5e-5 on logits of magnitude ~10 is fp32 noise, not a
    failure; the same absolute error on outputs of magnitude ~1e-3 is."""
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal(1_000_000) * 4).astype(np.float32)
    got = logits.copy()
    got[123] += np.float32(5e-5)
    rtol, factor = TOLERANCES["fp32"]
    scale = output_scale(logits)
    assert scale == float(np.abs(logits).max()) > 10
    assert compare_arrays(got, logits, rtol, factor * scale)["ok"]
    tiny = logits * np.float32(1e-4)
    off = tiny.copy()
    off[123] += np.float32(5e-5)
    r = compare_arrays(off, tiny, rtol, factor * output_scale(tiny))
    assert not r["ok"] and r["mismatched"] == 1 and r["fraction"] == 1e-6


def test_the_scale_ignores_what_is_not_a_finite_float() -> None:
    assert output_scale(np.array([np.inf, -3.0, np.nan], np.float32)) == 3.0
    assert output_scale(np.zeros(4, np.float32)) == 1.0  # all zero: atol is the bare factor
    assert output_scale(np.array([5, 7], np.int64)) == 1.0


def test_the_lossier_precision_of_the_pair_decides() -> None:
    assert tolerance_for("fp32", "fp32") == ("fp32", *TOLERANCES["fp32"])
    assert tolerance_for("fp16", "fp32") == ("fp16", *TOLERANCES["fp16"])
    assert tolerance_for("fp32", "bf16")[0] == "bf16"
