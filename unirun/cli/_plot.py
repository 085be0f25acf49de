"""The ``bench --plot`` chart. matplotlib is optional (``pip install 'unirun[plot]'``) and is
imported only here, only when a chart is asked for, with the non-interactive Agg backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UnirunError

_PALETTE = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3")


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UnirunError(
            "--plot needs matplotlib, which is not installed: pip install 'unirun[plot]'"
        ) from None


def bench_chart(results: list[dict[str, Any]], path: Path, title: str) -> None:
    """Left: each backend's latency distribution (every run as a dot, p50–p90 as a bar, p99 as a
    tick). Right: throughput. Backends top to bottom in the order benchmarked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    n = len(results)
    fig, (lat, thr) = plt.subplots(
        1,
        2,
        figsize=(10, 1.6 + 0.75 * n),
        sharey=True,
        gridspec_kw={"width_ratios": (2.2, 1), "wspace": 0.08},
    )
    rows = np.arange(n)[::-1]  # first backend on top
    rng = np.random.default_rng(0)
    for i, (y, r) in enumerate(zip(rows, results, strict=True)):
        colour = _PALETTE[i % len(_PALETTE)]
        ms = np.asarray(r["latencies_ms"])
        jitter = rng.uniform(-0.18, 0.18, ms.size)
        lat.scatter(ms, y + jitter, s=7, color=colour, alpha=0.35, linewidths=0)
        lat.hlines(y, r["p50_ms"], r["p90_ms"], color=colour, linewidth=7, alpha=0.9)
        lat.vlines(r["p99_ms"], y - 0.25, y + 0.25, color=colour, linewidth=2)
        lat.plot(r["p50_ms"], y, marker="o", color="white", markeredgecolor=colour, markersize=7)
        lat.annotate(
            f"p50 {r['p50_ms']:.3g} ms",
            (r["p50_ms"], y + 0.3),
            fontsize=8,
            color="#333333",
            ha="left",
        )
        thr.barh(y, r["throughput_per_s"], color=colour, height=0.55)
        thr.annotate(
            f" {r['throughput_per_s']:,.0f}/s",
            (r["throughput_per_s"], y),
            va="center",
            fontsize=8,
            color="#333333",
        )
    labels = [f"{r['backend']}\n{r['device']}" for r in results]
    lat.set_yticks(rows, labels)
    lat.set_ylim(-0.7, n - 0.3)
    lat.set_xlabel("latency per request (ms) — dots: runs · bar: p50–p90 · tick: p99")
    flight = results[0].get("concurrency", 1)
    thr.set_xlabel("throughput (inferences / s)" + (f", {flight} in flight" if flight > 1 else ""))
    # Engines can differ by orders of magnitude: switch to log scales rather than squash one.
    fastest = min(r["min_ms"] for r in results)
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    if fastest > 0 and max(r["p99_ms"] for r in results) / fastest > 20:
        lat.set_xscale("log")
        lat.xaxis.set_major_formatter(plain)
    else:
        lat.set_xlim(left=0)
    rates = [r["throughput_per_s"] for r in results]
    if min(rates) > 0 and max(rates) / min(rates) > 20:
        thr.set_xscale("log")
        thr.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
        thr.set_xlim(min(rates) / 2, max(rates) * 6)
    else:
        thr.set_xlim(0, max(rates) * 1.35)
    for ax in (lat, thr):
        ax.grid(axis="x", color="#dddddd", linewidth=0.8)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    thr.tick_params(axis="y", length=0)
    counts = sorted({r["runs"] for r in results})
    runs = (
        f"{counts[0]} timed runs each"
        if len(counts) == 1
        else "timed runs: " + ", ".join(str(r["runs"]) for r in results)
    )
    fig.suptitle(f"{title} · {runs}", x=0.02, ha="left", fontsize=11)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
