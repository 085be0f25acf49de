"""The bench chart: a failed backend keeps its row with the reason, and every label the chart
writes stays inside its panel (drawn with matplotlib's Agg renderer and measured)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="the chart needs matplotlib (unirun[plot])")

from unirun.cli._plot import build_chart


def _row(backend: str, ms: list[float], throughput: float, **extra: Any) -> dict[str, Any]:
    lat = np.asarray(ms)
    p50, p90, p99 = np.percentile(lat, [50, 90, 99])
    return {
        "backend": backend,
        "device": "cpu",
        "precision": "fp32",
        "requested_precision": "fp32",
        "runs": lat.size,
        "p50_ms": p50,
        "p90_ms": p90,
        "p99_ms": p99,
        "min_ms": lat.min(),
        "throughput_per_s": throughput,
        "latencies_ms": lat.tolist(),
        **extra,
    }


CASES = {
    "close": [_row("a", [1.0, 1.1, 1.3], 900), _row("b", [1.2, 1.5, 2.0], 700)],
    "orders apart": [
        _row("fast", [0.02, 0.03, 0.05], 40_000),
        _row("slow", [30.0, 35.0, 80.0], 30, requested_precision="fp16"),
    ],
    "one failed": [
        _row("ok", [0.5, 0.6, 0.9], 1_800),
        {"backend": "broken", "error": "CompileError: " + "the engine refused the model " * 8},
    ],
    "all failed": [{"backend": "x", "error": "BackendNotFoundError: no backend named 'x'"}],
}


@pytest.mark.parametrize("case", list(CASES))
def test_labels_stay_inside_their_panel(case: str) -> None:
    import matplotlib.pyplot as plt

    fig = build_chart(CASES[case], "model.onnx · fp32")
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes:
            box = ax.get_window_extent(renderer)
            for text in ax.texts:
                inner = text.get_window_extent(renderer)
                assert box.x0 - 1 <= inner.x0 and inner.x1 <= box.x1 + 1, text.get_text()
                assert box.y0 - 1 <= inner.y0 and inner.y1 <= box.y1 + 1, text.get_text()
        labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
        for row in CASES[case]:
            assert any(label.startswith(row["backend"] + "\n") for label in labels)
            if "error" in row:
                assert any(t.get_text().startswith("failed: ") for t in fig.axes[0].texts)
        if case == "orders apart":
            assert "slow\ncpu · fp16→fp32" in labels
    finally:
        plt.close(fig)
