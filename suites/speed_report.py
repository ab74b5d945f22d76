"""The speed report: speed.md, .json and .png from pytest-benchmark's results, against the speed
targets (figures to report against, never asserts), the roofline and pytorch/examples' pipeline.
Written atomically (fixtures.files)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from twinbench.fixtures.files import atomic_write, plot
from twinbench.impls import networks

# Targets: figures to report against, never asserts (fixtures/expected.py holds expectations of
# correctness; these are aspirations of speed, from the speed issue).
CPU_TRAIN_ROOFLINE_TARGET = 0.7     # each framework's CPU training throughput / 2-thread sgemm roofline
# A torch epoch on an H100-class GPU, fp32, TF32 off, fastest variant with parity (the whole step
# in CUDA graphs, measured 0.618 s for MNIST and 0.132 s for the tweets in the speed issue's probes).
GPU_TORCH_EPOCH_TARGET_S = {"mnist_cnn": 0.6, "tweet_fasttext": 0.15}


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
    lines += _gpu_targets(rows, roofline)
    pipe = {r["name"]: r for r in rows if r["figure"] == "pipeline"}
    for fw in ("torch", "keras"):
        ours, seed = pipe.get(f"{fw}-ours"), pipe.get(f"{fw}-seed")
        if ours and seed:
            lines.append(f"- Input pipeline, {fw} MNIST: the seed's pipeline takes {seed['median_s'] / ours['median_s']:.2f}x "
                         f"ours ({_fmt_s(seed['median_s'])} vs {_fmt_s(ours['median_s'])} for "
                         f"{ours['extra_info'].get('steps')} steps)")
    return lines


def _gpu_targets(rows, roofline: dict) -> list[str]:
    """Each network's torch GPU epoch (the fastest variant that passed its parity gates: a variant
    that failed them is never timed), against the target, pytorch/examples' pipeline and the
    roofline; and the time-to-gate of each variant. A figure kept from an earlier run in the folder
    (this run did not time it, or its test failed) says when it was measured."""
    lines = []
    stamps = [r.get("measured_at") for r in rows]
    latest = max((a for a in stamps if _is_stamp(a)), default=None)

    def when(r) -> str:
        at = r.get("measured_at")
        if not at or at == latest:
            return ""
        return f" [kept from an earlier run, measured {at}]" if _is_stamp(at) else " [kept from an earlier run]"

    for net, target in GPU_TORCH_EPOCH_TARGET_S.items():
        gpu = [r for r in rows if r["figure"] == "epoch" and r["device"] == "gpu" and r["framework"] == "torch"
               and r["network"] == net]
        ours = [r for r in gpu if r["variant"] != "examples pipeline"]
        if not ours:
            why = ("not selected" if any(r["device"] == "gpu" for r in rows) else
                   "no GPU visible; see reports/gpu/ for runs on a lent GPU machine")
            lines.append(f"- GPU torch {net} epoch (target {target:g} s): not measured in this run ({why})")
            continue
        # Judged on the suite's determinism settings; a variant that lets cuDNN choose
        # nondeterministic kernels is reported beside it, never in its place.
        deterministic = [r for r in ours if not _nondeterministic(r)]
        loose = [r for r in ours if _nondeterministic(r)]
        best = min(deterministic or loose, key=lambda r: r["median_s"])
        each = ", ".join(f"{r['name']} {_fmt_s(r['median_s'])}{when(r)}" for r in sorted(ours, key=lambda r: r["median_s"]))
        if deterministic:
            met = "meets" if best["median_s"] <= target else "misses"
            line = (f"- GPU torch {net} epoch: fastest deterministic {best['name']} {_fmt_s(best['median_s'])}{when(best)}; "
                    f"target {target:g} s: **{met}**")
        else:
            line = f"- GPU torch {net} epoch: no deterministic variant timed in this run (target {target:g} s: not judged)"
        if loose:
            fast = min(loose, key=lambda r: r["median_s"])
            line += (f"; with nondeterministic cuDNN kernels allowed, {fast['name']} {_fmt_s(fast['median_s'])} "
                     f"({'meets' if fast['median_s'] <= target else 'misses'})")
        line += f" ({each})"
        examples = next((r for r in gpu if r["variant"] == "examples pipeline"), None)
        if examples:
            line += f"; pytorch/examples' pipeline {_fmt_s(examples['median_s'])}, {examples['median_s'] / best['median_s']:.1f}x slower"
        flops = networks.get(net).flops_per_sample["train"] * (best["extra_info"].get("samples") or 0)
        if net == "tweet_fasttext":
            line += "; memory-bound (~7 kFLOP per tweet), so the sgemm roofline is no yardstick"
        elif roofline.get("gpu") and flops:
            floor = flops / (roofline["gpu"] * 1e9)
            line += f"; at the sgemm roofline an epoch would take {_fmt_s(floor)} (the fastest{' deterministic' if deterministic else ''} takes {best['median_s'] / floor:.1f}x that)"
        lines.append(line)
    for r in rows:
        info = r["extra_info"]
        if r["figure"] == "time-to-gate" and info.get("seconds_to_gate"):
            mean = info.get("olympic_seconds_to_gate")
            lines.append(f"- GPU time to {networks.get(r['network']).gate_permille / 10:g}% ({r['name']}): "
                         + (f"olympic mean {mean:.3g} s, {info.get('olympic_epochs_to_gate'):.3g} epochs, over seeds "
                            if len(info["seeds"]) >= 3 and mean is not None else "seed ")
                         + ", ".join(f"{s}: {e} epochs {t:.3g} s" if t is not None else f"{s}: not reached"
                                     for s, e, t in zip(info["seeds"], info["epochs_to_gate"], info["seconds_to_gate"]))
                         + when(r))
    return lines


def _is_stamp(value) -> bool:
    """An ISO time as _merged_rows writes it (rows of older reports say "an earlier run")."""
    return isinstance(value, str) and len(value) >= 19 and value[:4].isdigit() and value[10] == "T"


def _nondeterministic(row) -> bool:
    return "nondeterministic" in (row.get("variant") or "")


def _merged_rows(rows: list, previous: Path) -> list:
    """This run's rows, plus the rows of an earlier run in the same folder that this run did not
    time (a ``-m gpu`` run after a CPU one keeps the CPU figures, and the other way round). Each
    row carries the time of the run that measured it."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    rows = [dict(r, measured_at=r.get("measured_at", stamp)) for r in rows]
    if not previous.exists():
        return rows
    try:
        old = json.loads(previous.read_text()).get("rows", [])
    except (ValueError, OSError):
        return rows
    key = lambda r: (r.get("network"), r.get("figure"), r.get("device"), r.get("name"))  # noqa: E731
    seen = {key(r) for r in rows}
    kept = [dict(r, measured_at=r.get("measured_at", "an earlier run")) for r in old if key(r) not in seen]
    return sorted(rows + kept, key=lambda r: (r["network"] or "", r["figure"] or "", r["device"] or "", r["name"]))


def write_speed_report(benchmarks, out: Path, versions: dict, devices: dict, roofline: dict) -> list[Path]:
    rows = benchmark_rows(benchmarks)
    if not rows:
        return []
    return write_speed_rows(_merged_rows(rows, out / "speed.json"), out, versions, devices, roofline)


def rerender_speed(out: Path) -> list[Path]:
    """Write speed.md and .png again from ``out/speed.json`` (its rows, versions and devices as
    measured): a report from a lent GPU machine, re-rendered after a change to this module."""
    payload = json.loads((out / "speed.json").read_text())
    return write_speed_rows(payload["rows"], out, payload["versions"], payload["devices"], payload["roofline_gflops"])


def write_speed_rows(rows: list, out: Path, versions: dict, devices: dict, roofline: dict) -> list[Path]:
    lines = ["# twinbench speed", "",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
             "Devices: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in devices.items()),
             "Roofline (best of 3 fp32 4096x4096 sgemms, TF32 off): "
             + ", ".join(f"{d} {g:.0f} GFLOP/s" for d, g in roofline.items()), "",
             "## Against the targets", ""] + _targets(rows, roofline) + [
             "", "## Figures", "",
             "Median and interquartile range over the timed rounds. samples/s = samples per timed unit / median. "
             "Rows this run did not time are kept from earlier runs in this folder, with when they were measured.", "",
             "| network | figure | device | impl | median | IQR | rounds | samples/s | roofline | measured |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        rate = f"{r['samples_per_s']:.4g}" if r["samples_per_s"] else "-"
        roof = f"{100 * r['roofline_fraction']:.2f}%" if r["roofline_fraction"] is not None else "-"
        lines.append(f"| {r['network']} | {r['figure']} | {r['device']} | {r['name']} | {_fmt_s(r['median_s'])} | "
                     f"{_fmt_s(r['iqr_s'])} | {r['rounds']} | {rate} | {roof} | {r['measured_at']} |")
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "speed.md", out / "speed.json", out / "speed.png"]
    atomic_write(written[0], "\n".join(lines) + "\n")
    payload = {"versions": versions, "devices": devices, "roofline_gflops": roofline, "rows": rows}
    atomic_write(written[1], json.dumps(payload, indent=2, default=str))
    _bar_chart(rows, written[2])
    return written


def _bar_chart(rows, path: Path) -> None:
    groups = {}
    for r in rows:
        if r["samples_per_s"]:
            groups.setdefault(r["group"], []).append(r)
    cols = 3
    nrows = max(1, (len(groups) + cols - 1) // cols)

    def draw(fig, axes):
        for ax, (group, rs) in zip(axes.flat, sorted(groups.items())):
            colors = ["tab:red" if r["framework"] == "torch" else "tab:blue" for r in rs]
            ax.barh([r["name"] for r in rs], [r["samples_per_s"] for r in rs], color=colors)
            ax.set_title(group, fontsize=9)
            ax.set_xlabel("samples/s (median)", fontsize=8)
            ax.tick_params(labelsize=7)
        for ax in list(axes.flat)[len(groups):]:
            ax.axis("off")
        fig.suptitle("twinbench speed: torch (red) and Keras (blue) side by side", fontsize=11)
        fig.tight_layout()

    plot(path, draw, figsize=(15, 2.6 * nrows), dpi=80, nrows=nrows, ncols=cols, squeeze=False)
