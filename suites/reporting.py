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
            if hits and net == "tweet_fasttext":  # ~7 kFLOP per sample: bound by memory, not by FLOPs
                best = max(hits, key=lambda r: r["samples_per_s"])
                lines.append(f"- CPU training throughput, {fw} {net}: {best['samples_per_s']:.4g} samples/s "
                             f"({best['name']}); memory-bound (the Adam update of 1M parameters per step), so its "
                             "share of the sgemm roofline is not a meaningful target")
            elif hits:
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


_STATUS_COLOUR = {"pass": "#c8f0c8", "FAIL": "#f8c8c8", "xfail": "#f0e0c0", "XPASS": "#f8a0a0", "skip": "#e0e0e0"}


def _rel_images(out: Path, folder: str) -> list[Path]:
    return sorted((out / folder).glob("*.png")) if (out / folder).is_dir() else []


def write_conformance(out: Path, results: dict, impls: list, checks: list, verdicts: dict, versions: dict,
                      devices: dict, roofline: dict) -> list[Path]:
    """reports/conformance.md, .html and .json: the matrix (impl x check) with the reasons, the
    versions and devices, the side-by-side summaries, the plot_model diagrams, the convergence
    curves and the speed table, from what this run (and the checks it ran) wrote into ``out``."""
    import html as H

    head = ["Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
            "Devices: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in devices.items()),
            "Roofline: " + (", ".join(f"{d} {g:.0f} GFLOP/s" for d, g in roofline.items()) or "not measured")]
    md = ["# twinbench conformance report", ""] + [f"{h}  " for h in head] + ["", "## Verdicts", ""]
    md += [f"- `{i}`: **{v}** ({s})" for i, (v, s) in verdicts.items()]
    md += ["", "## Matrix", "", "| impl | " + " | ".join(checks) + " |", "|---|" + "---|" * len(checks)]
    for impl in impls:
        md.append(f"| {impl} | " + " | ".join(results.get((impl, c), ("",))[0] or "-" for c in checks) + " |")
    notes = [(i, c, s, d) for (i, c), (s, d) in sorted(results.items()) if s in ("FAIL", "xfail", "XPASS", "skip") and d]
    if notes:
        md += ["", "## Reasons (fail, xfail, skip)", ""] + [f"- `{i}` `{c}` **{s}**: {d}" for i, c, s, d in notes]

    summaries = sorted((out / "summaries").glob("*.md")) if (out / "summaries").is_dir() else []
    models = _rel_images(out, "models")
    model_notes = sorted((out / "models").glob("*.txt")) if (out / "models").is_dir() else []
    curves = _rel_images(out, "convergence")
    speed_md = out / "speed.md"
    extras = [("Side-by-side summaries", [f"- [{p.stem}]({p.relative_to(out)})" for p in summaries]),
              ("Model diagrams (keras.utils.plot_model)", [f"![{p.stem}]({p.relative_to(out)})" for p in models]
               + [f"- {p.read_text().strip()}" for p in model_notes]),
              ("Convergence curves", [f"![{p.stem}]({p.relative_to(out)})" for p in curves]),
              ("Speed", [f"See [speed.md](speed.md) and ![speed](speed.png)" if speed_md.exists() else
                         "not measured in this run (benchmarks disabled): `make bench` or `make conform`"])]
    for title, lines in extras:
        md += ["", f"## {title}", ""] + (lines or ["none written in this run"])

    cells = []
    for impl in impls:
        row = "".join(
            f'<td style="background:{_STATUS_COLOUR.get(s, "#fff")}" title="{H.escape(d)}">{H.escape(s or "-")}</td>'
            for s, d in (results.get((impl, c), ("", "")) for c in checks))
        verdict = verdicts.get(impl, ("", ""))[0]
        cells.append(f"<tr><th>{H.escape(impl)}</th><td>{H.escape(verdict)}</td>{row}</tr>")
    header = "".join(f'<th class="c"><div>{H.escape(c)}</div></th>' for c in checks)
    sections = []
    for p in summaries:
        sections.append(f"<h3>{H.escape(p.stem)}</h3><pre>{H.escape(p.read_text())}</pre>")
    imgs = lambda ps: "".join(f'<figure><img src="{H.escape(str(p.relative_to(out)))}" style="max-width:100%">'  # noqa: E731
                              f"<figcaption>{H.escape(p.stem)}</figcaption></figure>" for p in ps)
    speed_html = (f"<pre>{H.escape(speed_md.read_text())}</pre><img src='speed.png' style='max-width:100%'>"
                  if speed_md.exists() else "<p>not measured in this run (benchmarks disabled)</p>")
    page = ("<!doctype html><meta charset='utf-8'><title>twinbench conformance</title><style>"
            "body{font-family:sans-serif;font-size:13px}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            "padding:2px 4px;font-size:11px}th.c{height:220px;white-space:nowrap;vertical-align:bottom}"
            "th.c div{transform:rotate(-70deg);width:20px}pre{font-size:11px;background:#f6f6f6;padding:6px}</style>"
            "<h1>twinbench conformance report</h1>" + "".join(f"<p>{H.escape(h)}</p>" for h in head)
            + f"<table><tr><th>impl</th><th>verdict</th>{header}</tr>{''.join(cells)}</table>"
            + "<h2>Reasons</h2><ul>" + "".join(f"<li><code>{H.escape(i)}</code> <code>{H.escape(c)}</code> "
                                                 f"<b>{H.escape(s)}</b>: {H.escape(d)}</li>" for i, c, s, d in notes)
            + "</ul><h2>Side-by-side summaries</h2>" + ("".join(sections) or "<p>none written in this run</p>")
            + "<h2>Model diagrams</h2>" + (imgs(models) or "<p>none</p>")
            + "".join(f"<p>{H.escape(p.read_text().strip())}</p>" for p in model_notes)
            + "<h2>Convergence curves</h2>" + (imgs(curves) or "<p>none written in this run</p>")
            + "<h2>Speed</h2>" + speed_html)
    payload = {"versions": versions, "devices": devices, "roofline_gflops": roofline,
               "verdicts": {i: {"verdict": v, "counts": s} for i, (v, s) in verdicts.items()},
               "results": [{"impl": i, "check": c, "status": s, "detail": d} for (i, c), (s, d) in sorted(results.items())]}
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "conformance.md", out / "conformance.html", out / "conformance.json"]
    D.atomic_write_bytes(written[0], ("\n".join(md) + "\n").encode())
    D.atomic_write_bytes(written[1], page.encode())
    D.atomic_write_bytes(written[2], json.dumps(payload, indent=2).encode())
    return written
