"""The ``bench --plot`` chart. matplotlib is optional (``pip install 'unirun[plot]'``) and is
imported only here, only when a chart is asked for, with the non-interactive Agg backend."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UnirunError

_PALETTE = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3")
_FAILED = "#B03A2E"


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UnirunError(
            "--plot needs matplotlib, which is not installed: pip install 'unirun[plot]'"
        ) from None


def bench_chart(results: list[dict[str, Any]], path: Path, title: str) -> None:
    """Draw :func:`build_chart` to ``path``."""
    import matplotlib.pyplot as plt

    fig = build_chart(results, title)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)


def _label(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{r['backend']}\nfailed"
    precision = r.get("precision", "")
    asked = r.get("requested_precision", precision)
    shown = precision if precision == asked else f"{asked}→{precision}"
    return f"{r['backend']}\n{r['device']} · {shown}" if shown else f"{r['backend']}\n{r['device']}"


def build_chart(results: list[dict[str, Any]], title: str) -> Any:
    """Left: each backend's latency distribution (every run as a dot, p50–p90 as a bar, p99 as a
    tick). Right: throughput. Backends top to bottom in the order benchmarked; a backend that
    failed keeps its row, with the reason. Every label stays inside its panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter
    from matplotlib.transforms import blended_transform_factory

    n = len(results)
    ok = [r for r in results if "error" not in r]
    fig, (lat, thr) = plt.subplots(
        1,
        2,
        figsize=(10, 1.6 + 0.75 * n),
        sharey=True,
        gridspec_kw={"width_ratios": (2.2, 1), "wspace": 0.08},
    )
    rows = np.arange(n)[::-1]  # first backend on top
    rng = np.random.default_rng(0)
    _scales(lat, thr, ok, FuncFormatter)
    lat_x = blended_transform_factory(lat.transAxes, lat.transData)
    thr_x = blended_transform_factory(thr.transAxes, thr.transData)
    for i, (y, r) in enumerate(zip(rows, results, strict=True)):
        if "error" in r:
            reason = textwrap.shorten(f"failed: {r['error']}", 150, placeholder=" …")
            lat.text(
                0.01,
                y,
                textwrap.fill(reason, 75),
                transform=lat_x,
                va="center",
                fontsize=8,
                color=_FAILED,
            )
            thr.text(0.02, y, "—", transform=thr_x, va="center", fontsize=8, color=_FAILED)
            continue
        colour = _PALETTE[i % len(_PALETTE)]
        ms = np.asarray(r["latencies_ms"])
        jitter = rng.uniform(-0.18, 0.18, ms.size)
        lat.scatter(ms, y + jitter, s=7, color=colour, alpha=0.35, linewidths=0)
        lat.hlines(y, r["p50_ms"], r["p90_ms"], color=colour, linewidth=7, alpha=0.9)
        lat.vlines(r["p99_ms"], y - 0.25, y + 0.25, color=colour, linewidth=2)
        lat.plot(r["p50_ms"], y, marker="o", color="white", markeredgecolor=colour, markersize=7)
        at = _fraction(lat, r["p50_ms"])
        lat.text(
            at + (-0.01 if at > 0.6 else 0.01),
            y + 0.3,
            f"p50 {r['p50_ms']:.3g} ms",
            transform=lat_x,
            fontsize=8,
            color="#333333",
            ha="right" if at > 0.6 else "left",
        )
        thr.barh(y, r["throughput_per_s"], color=colour, height=0.55)
        end = _fraction(thr, r["throughput_per_s"])
        inside = end > 0.55
        thr.text(
            end + (-0.02 if inside else 0.02),
            y,
            f"{r['throughput_per_s']:,.0f}/s",
            transform=thr_x,
            va="center",
            fontsize=8,
            ha="right" if inside else "left",
            color="white" if inside else "#333333",
        )
    lat.set_yticks(rows, [_label(r) for r in results])
    lat.set_ylim(-0.7, n - 0.3)
    lat.set_xlabel("latency per request (ms) — dots: runs · bar: p50–p90 · tick: p99")
    flight = ok[0].get("concurrency", 1) if ok else 1
    thr.set_xlabel("throughput (inferences / s)" + (f", {flight} in flight" if flight > 1 else ""))
    for ax in (lat, thr):
        ax.grid(axis="x", color="#dddddd", linewidth=0.8)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    thr.tick_params(axis="y", length=0)
    counts = sorted({r["runs"] for r in ok})
    runs = (
        f"{counts[0]} timed runs each"
        if len(counts) == 1
        else "timed runs: " + ", ".join(str(r["runs"]) for r in ok)
    )
    failed = len(results) - len(ok)
    note = f" · {failed} backend{'s' if failed > 1 else ''} failed" if failed else ""
    fig.suptitle(f"{title} · {runs if ok else 'nothing ran'}{note}", x=0.02, ha="left", fontsize=11)
    return fig


def _scales(lat: Any, thr: Any, ok: list[dict[str, Any]], formatter: Any) -> None:
    """Axis limits first, so labels can be placed by where their point falls in the panel.
    Engines can differ by orders of magnitude: switch to log scales rather than squash one."""
    if not ok:
        lat.set_xlim(0, 1)
        thr.set_xlim(0, 1)
        return
    fastest = min(r["min_ms"] for r in ok)
    slowest = max(max(r["latencies_ms"]) for r in ok)
    plain = formatter(lambda value, _: f"{value:g}")
    if fastest > 0 and slowest / fastest > 20:
        lat.set_xscale("log")
        lat.xaxis.set_major_formatter(plain)
        lat.set_xlim(fastest / 1.5, slowest * 1.5)
    else:
        lat.set_xlim(0, slowest * 1.1)
    rates = [r["throughput_per_s"] for r in ok]
    if min(rates) > 0 and max(rates) / min(rates) > 20:
        thr.set_xscale("log")
        thr.xaxis.set_major_formatter(formatter(lambda value, _: f"{value:,.0f}"))
        thr.set_xlim(min(rates) / 2, max(rates) * 2)
    else:
        thr.set_xlim(0, max(rates) * 1.1)


def _fraction(ax: Any, x: float) -> float:
    """Where data ``x`` falls across ``ax``, from 0 (left) to 1 (right)."""
    display = ax.transData.transform((x, 0))
    return float(ax.transAxes.inverted().transform(display)[0])
