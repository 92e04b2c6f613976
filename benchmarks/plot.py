"""The benchmark figure: median wall time per variant, events/s, and the scaling run."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt


def plot(summary: dict, path: Path) -> Path:
    """Draw three panels (time, throughput, memory) and save them as PNG."""
    v = summary["variants"]
    names = list(v)
    colors = ["#7f7f7f" if k.startswith("floor") else "#d62728" if k.startswith("naive") else "#1f77b4"
              for k in names]
    labels = [f"{k}\nN={v[k]['n_events'] / 1e6:g}M" for k in names]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    ax = axes[0]
    ax.bar(labels, [v[k]["median_seconds"] for k in names], color=colors)
    for i, k in enumerate(names):
        ax.plot([i] * len(v[k]["seconds"]), v[k]["seconds"], "k.", ms=4)
    ax.set_ylabel("wall time, s (bar: median; dots: runs)")
    r = summary["ratios"]
    t = summary["targets"]  # the targets this bench checked (benchmarks.run.TARGETS)
    ax.set_title(f"pipeline/floor {r['pipeline_over_floor']:.2f} (<= {t['pipeline_over_floor']:g})   naive/pipeline "
                 f"{r['naive_over_pipeline']:.2f} (>= {t['naive_over_pipeline']:g})"
                 if None not in (r["pipeline_over_floor"], r["naive_over_pipeline"]) else "")
    ax = axes[1]
    ax.bar(labels, [v[k]["events_per_second"] / 1e3 for k in names], color=colors)
    ax.set_ylabel("thousand events / s")
    marginal = r.get("marginal_over_floor_marginal")
    ax.set_title((f"t(4N)/t(N) {r['scaling_time_ratio']:.2f} (<= {t['scaling_time_ratio']:g})"
                  + (f"  marginal/floor {marginal:.1f} (<= {t['marginal_over_floor_marginal']:g})"
                     if marginal is not None else ""))
                 if r["scaling_time_ratio"] is not None else "")
    ax = axes[2]
    ax.bar(labels, [v[k]["peak_driver_rss_mb"] for k in names], color=colors, label="driver RSS (Python + JVM)")
    ax.plot(labels, [v[k]["peak_jvm_old_gen_mb"] for k in names], "ko", label="JVM old-gen peak")
    ax.set_ylabel("peak MB")
    ax.legend(fontsize=8)
    ax.set_title(f"driver memory 4N/N: {summary['memory_growth_4n_over_n']}")
    for a in axes:
        a.tick_params(axis="x", labelsize=8)
    m = summary["machine"]
    fig.suptitle(f"mobility-insights benchmark, {summary['started_utc']}  ({m['cpus']} CPUs, {m['memory_gb']} GB)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
