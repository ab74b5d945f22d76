"""The detection self-test's report: reports/detection.json and detection.md (kill rate, false
rejections, errors, the smallest margin, and tables per operator family, per check and per
diagnosed cause). Written atomically (fixtures.files)."""

from __future__ import annotations

import json
from pathlib import Path

from twinbench.fixtures.files import atomic_write


def detection_summary(runs: dict, versions: dict) -> dict:
    """The detection self-test's figures: kill rate, false rejections, errors, the smallest margin,
    and tables per operator family and per check (reports/detection.json)."""
    faulty = {k: v for k, v in runs.items() if v["faulty"]}
    good = {k: v for k, v in runs.items() if not v["faulty"]}
    killed = {k: v for k, v in faulty.items() if v["rejected"]}
    margins = [v["margin"] for v in killed.values() if v["margin"] is not None]
    families = {}
    for k, v in runs.items():
        row = families.setdefault(v["family"] if v["faulty"] else "equivalent", {"candidates": 0, "killed": 0, "rejected": 0})
        row["candidates"] += 1
        row["killed" if v["faulty"] else "rejected"] += int(v["rejected"])
    checks = {}
    for k, v in faulty.items():
        for name in v["failed"]:
            checks.setdefault(name, {"kills": [], "only_kills": []})["kills"].append(k)
            if len(v["failed"]) == 1:
                checks[name]["only_kills"].append(k)
    causes = {}
    for k, v in runs.items():
        want = v.get("expected_cause")
        if want:
            row = causes.setdefault(want, {"mutants": 0, "exact": 0, "among_others": 0, "missed": []})
            row["mutants"] += 1
            got = v.get("diagnosis", [])
            if got == [want]:
                row["exact"] += 1
            elif want in got:
                row["among_others"] += 1
            else:
                row["missed"].append(k)
    return {
        "versions": versions, "candidates": len(runs), "faulty": len(faulty), "killed": len(killed),
        "diagnosis": dict(sorted(causes.items())),
        "kill_rate": len(killed) / len(faulty) if faulty else None, "equivalent": len(good),
        "false_rejections": sorted(k for k, v in good.items() if v["rejected"]),
        "errors": sorted(k for k, v in runs.items() if v["errors"]),
        "min_margin": min(margins) if margins else None,
        "no_margin": sorted(k for k, v in killed.items() if v["margin"] is None),
        "mutants": sum(1 for k in runs if k.startswith("mutant-")),
        "survivors": {k: v["doc"] for k, v in faulty.items() if not v["rejected"]},
        "families": dict(sorted(families.items())), "checks": dict(sorted(checks.items())),
        "results": runs,
    }


def _detection_md(d: dict) -> str:
    rate = f"{d['killed']}/{d['faulty']}" + (f" ({100 * d['kill_rate']:.1f}%)" if d["faulty"] else "")
    lines = ["# Detection self-test", "",
             f"- faulty candidates killed: {rate}",
             f"- equivalent (correct) candidates falsely rejected: {len(d['false_rejections'])} of {d['equivalent']}",
             f"- candidates with a crashed check: {len(d['errors'])}",
             f"- smallest margin of a kill (measured / tolerance, the largest over its rejecting checks): "
             f"{d['min_margin']:.3g}" if d["min_margin"] is not None else "- smallest margin: none measured",
             f"- kills by exact checks only (shapes, counts: no tolerance, no margin): {len(d['no_margin'])}",
             f"- generated mutants in this run: {d['mutants']}", "",
             "## By operator family", "", "| family | candidates | killed | falsely rejected |", "|---|---|---|---|"]
    for family, row in d["families"].items():
        lines.append(f"| {family} | {row['candidates']} | {row['killed'] if family != 'equivalent' else '-'} | "
                     f"{row['rejected'] if family == 'equivalent' else '-'} |")
    lines += ["", "## By check", "", "| check | kills | only it kills |", "|---|---|---|"]
    for name, row in sorted(d["checks"].items(), key=lambda kv: -len(kv[1]["kills"])):
        only = ", ".join(row["only_kills"]) or "-"
        lines.append(f"| `{name}` | {len(row['kills'])} | {only} |")
    lines += ["", "## Diagnosis hit rate per cause (mutants whose operator is in the catalogue)", "",
              "| cause | mutants | named exactly | named among others | missed |", "|---|---|---|---|---|"]
    for cause, row in d["diagnosis"].items():
        lines.append(f"| `{cause}` | {row['mutants']} | {row['exact']} | {row['among_others']} | "
                     f"{', '.join(row['missed']) or '-'} |")
    lines += ["", "## Survivors", ""]
    lines += [f"- `{k}`: {doc}: no check rejects it" for k, doc in d["survivors"].items()] or ["none"]
    lines += ["", "## False rejections", ""]
    lines += [f"- `{k}`: {d['results'][k]['first_message'][:300]}" for k in d["false_rejections"]] or ["none"]
    lines += ["", "## Every candidate", "", "| candidate | family | rejected by | margin | diagnosis | s |",
              "|---|---|---|---|---|---|"]
    for k, v in d["results"].items():
        margin = "-" if v["margin"] is None else f"{v['margin']:.3g}"
        lines.append(f"| `{k}` | {v['family'] if v['faulty'] else 'equivalent'} | {len(v['failed'])} | {margin} | "
                     f"{', '.join(v.get('diagnosis', [])) or '-'} | {v['seconds']} |")
    return "\n".join(lines) + "\n"


def write_detection(out: Path, runs: dict, versions: dict) -> tuple[list, dict]:
    """reports/detection.json and detection.md (see detection_summary)."""
    d = detection_summary(runs, versions)
    written = [atomic_write(out / "detection.json", json.dumps(d, indent=1)),
               atomic_write(out / "detection.md", _detection_md(d))]
    return written, d
