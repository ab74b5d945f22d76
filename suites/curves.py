"""Curves a run draws beside its checks: the convergence record and curves
(reports/convergence/<network>.json and .png) and the trajectory plots (reports/trajectories/)."""

from __future__ import annotations

import json
from pathlib import Path

from twinbench.fixtures.files import atomic_write, plot


def write_convergence(out: Path, network: str, record: dict, gate: float, majority: float | None) -> list[Path]:
    """convergence/<network>.json and .png: every epoch of every run, the gate drawn in."""
    folder = out / "convergence"
    written = [atomic_write(folder / f"{network}.json", json.dumps(record, indent=2, default=str))]

    def draw(fig, ax):
        for r in record["runs"]:
            ax.plot([e["epoch"] for e in r["epochs"]], [100 * e["accuracy"] for e in r["epochs"]],
                    marker="o", label=f"{r['impl']} (seed {r['seed']})")
        ax.axhline(gate, color="red", linestyle=":", label=f"gate {gate}%")
        if majority is not None:
            ax.axhline(majority, color="grey", linestyle="--", label=f"majority class {majority}%")
        ax.set(xlabel="epoch", ylabel="test accuracy (%)", title=f"{network}: time to accuracy")
        ax.legend(fontsize=8)

    written.append(plot(folder / f"{network}.png", draw))
    return written


def write_trajectory_plot(out: Path, name: str, partner: str, a, b, label: str) -> Path:
    def draw(fig, ax):
        ax.plot(a, label=name)
        ax.plot(b, label=partner, linestyle="--")
        ax.set(xlabel="optimizer step", ylabel=f"training loss ({label})", yscale="log",
               title=f"trajectory: {name} vs {partner}")
        ax.legend(fontsize=8)

    return plot(out / "trajectories" / f"{name}-vs-{partner}-{label.replace(' ', '_')}.png", draw)
