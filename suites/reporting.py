"""Report writers that need no framework: the speed table and chart from pytest-benchmark results.

Everything is written atomically (fixtures.data.atomic_write_bytes): an interrupted run leaves
the previous report in place.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from fixtures import data as D

# Targets: figures to report against, never asserts (fixtures/expected.py holds expectations of
# correctness; these are aspirations of speed, from the speed issue).
CPU_TRAIN_ROOFLINE_TARGET = 0.7     # each framework's CPU training throughput / 2-thread sgemm roofline
GPU_TORCH_EPOCH_TARGET_S = 1.0      # a torch MNIST epoch on an H100-class GPU, fastest variant with parity


def benchmark_rows(benchmarks) -> list[dict]:
    """One flat row per timed benchmark (pytest-benchmark Metadata objects)."""
    rows = []
    for b in benchmarks:
        if not b.stats or not b.stats.data:
            continue
        info = dict(b.extra_info)
        s = b.stats
        rows.append({
            "group": b.group, "name": b.name, "fullname": b.fullname,
            "network": info.get("network"), "figure": info.get("figure"), "device": info.get("device"),
            "framework": info.get("framework"), "variant": info.get("variant", "eager"),
            "median_s": s.median, "iqr_s": s.iqr, "mean_s": s.mean, "min_s": s.min, "rounds": s.rounds,
            "samples_per_s": info.get("samples_per_s"), "roofline_fraction": info.get("roofline_fraction"),
            "achieved_gflops": info.get("achieved_gflops"), "extra_info": info,
        })
    return sorted(rows, key=lambda r: (r["network"] or "", r["figure"] or "", r["device"] or "", r["name"]))


def _fmt_s(x: float) -> str:
    return f"{x * 1e3:.3g} ms" if x < 1 else f"{x:.3g} s"


def _targets(rows, roofline: dict) -> list[str]:
    lines = []
    for fw in ("torch", "keras"):
        for net in ("mnist_cnn", "tweet_fasttext"):
            hits = [r for r in rows if r["figure"] == "train" and r["device"] == "cpu" and r["framework"] == fw
                    and r["network"] == net and r["variant"] == "eager" and r["roofline_fraction"] is not None]
            if hits:
                best = max(hits, key=lambda r: r["roofline_fraction"])
                met = "meets" if best["roofline_fraction"] >= CPU_TRAIN_ROOFLINE_TARGET else "below"
                lines.append(f"- CPU training throughput, {fw} {net}: {best['samples_per_s']:.4g} samples/s = "
                             f"{best['achieved_gflops']:.3g} GFLOP/s = {100 * best['roofline_fraction']:.1f}% of the "
                             f"{roofline.get('cpu', float('nan')):.0f} GFLOP/s sgemm roofline; target "
                             f"{100 * CPU_TRAIN_ROOFLINE_TARGET:.0f}%: **{met}** ({best['name']})")
    gpu = [r for r in rows if r["figure"] == "epoch" and r["device"] == "gpu" and r["framework"] == "torch"
           and r["network"] == "mnist_cnn"]
    if gpu:
        best = min(gpu, key=lambda r: r["median_s"])
        met = "meets" if best["median_s"] <= GPU_TORCH_EPOCH_TARGET_S else "misses"
        lines.append(f"- GPU torch MNIST epoch: fastest variant with forward parity {best['name']}: "
                     f"{_fmt_s(best['median_s'])}; target {GPU_TORCH_EPOCH_TARGET_S:g} s: **{met}**")
    else:
        lines.append(f"- GPU torch MNIST epoch (target {GPU_TORCH_EPOCH_TARGET_S:g} s): not measured in this run "
                     "(no GPU visible; see reports/gpu/ for runs on a lent GPU machine)")
    pipe = {r["name"]: r for r in rows if r["figure"] == "pipeline"}
    for fw in ("torch", "keras"):
        ours, seed = pipe.get(f"{fw}-ours"), pipe.get(f"{fw}-seed")
        if ours and seed:
            lines.append(f"- Input pipeline, {fw} MNIST: the seed's pipeline takes {seed['median_s'] / ours['median_s']:.2f}x "
                         f"ours ({_fmt_s(seed['median_s'])} vs {_fmt_s(ours['median_s'])} for "
                         f"{ours['extra_info'].get('steps')} steps)")
    return lines


def write_speed_report(benchmarks, out: Path, versions: dict, devices: dict, roofline: dict) -> list[Path]:
    rows = benchmark_rows(benchmarks)
    if not rows:
        return []
    lines = ["# twinbench speed", "",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
             "Devices: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in devices.items()),
             "Roofline (best of 3 fp32 4096x4096 sgemms, TF32 off): "
             + ", ".join(f"{d} {g:.0f} GFLOP/s" for d, g in roofline.items()), "",
             "## Against the targets", ""] + _targets(rows, roofline) + [
             "", "## Figures", "",
             "Median and interquartile range over the timed rounds. samples/s = samples per timed unit / median.", "",
             "| network | figure | device | impl | median | IQR | rounds | samples/s | roofline |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        rate = f"{r['samples_per_s']:.4g}" if r["samples_per_s"] else "-"
        roof = f"{100 * r['roofline_fraction']:.2f}%" if r["roofline_fraction"] is not None else "-"
        lines.append(f"| {r['network']} | {r['figure']} | {r['device']} | {r['name']} | {_fmt_s(r['median_s'])} | "
                     f"{_fmt_s(r['iqr_s'])} | {r['rounds']} | {rate} | {roof} |")
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "speed.md", out / "speed.json", out / "speed.png"]
    D.atomic_write_bytes(written[0], ("\n".join(lines) + "\n").encode())
    payload = {"versions": versions, "devices": devices, "roofline_gflops": roofline, "rows": rows}
    D.atomic_write_bytes(written[1], json.dumps(payload, indent=2, default=str).encode())
    _bar_chart(rows, written[2])
    return written


def _bar_chart(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {}
    for r in rows:
        if r["samples_per_s"]:
            groups.setdefault(r["group"], []).append(r)
    n = len(groups)
    cols = 3
    nrows = max(1, (n + cols - 1) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(15, 2.6 * nrows), squeeze=False)
    for ax, (group, rs) in zip(axes.flat, sorted(groups.items())):
        colors = ["tab:red" if r["framework"] == "torch" else "tab:blue" for r in rs]
        ax.barh([r["name"] for r in rs], [r["samples_per_s"] for r in rs], color=colors)
        ax.set_title(group, fontsize=9)
        ax.set_xlabel("samples/s (median)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle("twinbench speed: torch (red) and Keras (blue) side by side", fontsize=11)
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=path.parent)
    os.close(fd)
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, path)
