"""The run's state, its verdicts and every report it writes.

- ``RunState``: everything a session accumulates (outcomes, measurements, the conformance cells,
  the detection corpus, the baseline), held once in ``config.stash[STATE]``.
- One vocabulary for an outcome: ``pass``, ``fail``, ``error``, ``skip``, ``xfail``, ``xpass``.
  ``error`` is a crash of twinbench itself (a fixture or the harness), never a candidate's fault:
  a candidate that crashes fails the check.
- ``verdict``: the one rule that turns an implementation's cells into "conforms", "REJECTED",
  "INCOMPLETE" or "rejected as expected (known bad)".
- Writers: the conformance matrix (md, html, json), the detection report, the speed table and
  chart, the convergence record and curves. Every file is written atomically (fixtures.files).
"""

from __future__ import annotations

import fnmatch
import html as H
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fixtures import expected as E
from fixtures.files import atomic_write, plot

# Where checks write side products (summaries, plots); `make conform` and `make test` use reports/.
REPORTS = Path(os.environ.get("TWINBENCH_REPORTS", "reports"))

PASS, FAIL, ERROR, SKIP, XFAIL, XPASS = STATUSES = ("pass", "fail", "error", "skip", "xfail", "xpass")
_RANK = {PASS: 0, SKIP: 1, XFAIL: 2, XPASS: 3, FAIL: 4, ERROR: 5}  # the worst status of a cell wins
NO_RECIPE = "no recipe:"  # skip messages of recipe checks on a model-only candidate start with this
ERROR_PREFIX = "twinbench error (a crash of the check, not a verdict on the twin): "

# Check families: the conformance matrix's columns, in order. A check belongs to the first family
# one of whose fnmatch patterns its name matches.
FAMILIES = (
    ("shapes", ("check_output_shape*", "check_layer_shapes*")),
    ("parameters", ("check_param_count*", "check_all_trainable", "check_weight_roundtrip*",
                    "check_transfer_refuses_bad_shapes", "check_checkpoint_roundtrip", "check_weight_checkpoint*")),
    ("GPU", ("check_*_on_gpu*",)),
    ("forward", ("check_forward_parity*",)),
    ("randomness", ("check_dropout*", "check_stochastic*", "check_train_mode*", "check_random*")),
    ("loss/gradient", ("check_loss_parity*", "check_gradient_parity*")),
    ("optimizer", ("check_optimizer*",)),
    ("schedule", ("check_lr_schedule*", "check_recipe_*")),
    ("trajectory", ("check_trajectory*",)),
    ("convergence", ("check_accuracy_gate*", "check_framework_agreement*", "check_time_to*")),
    ("golden", ("check_golden*",)),
    ("speed", ("speed:*",)),
)
RECIPE_FAMILIES = ("loss/gradient", "optimizer", "schedule", "trajectory", "convergence")


def family(check: str) -> str:
    for name, patterns in FAMILIES:
        if any(fnmatch.fnmatchcase(check, p) for p in patterns):
            return name
    return "other"


@dataclass
class Cell:
    """The outcome of one (implementation, check) pair."""

    status: str
    detail: str = ""
    margin: float | None = None  # measured / tolerance of the check's deciding figure (< 1 passes)
    nodeid: str = ""


@dataclass
class RunState:
    """Everything one pytest session accumulates; ``config.stash[STATE]``."""

    candidates: list
    specs: list
    architecture_only: bool = False
    started: float = field(default_factory=time.perf_counter)
    cells: dict = field(default_factory=dict)        # (impl id, check name) -> Cell
    outcomes: dict = field(default_factory=dict)     # nodeid -> status
    measured: dict = field(default_factory=dict)     # nodeid -> {name: value}
    deselected: dict = field(default_factory=dict)   # impl id -> {family}
    detection: dict = field(default_factory=dict)    # corpus id -> record (suites/test_detection.py)
    baseline: dict | None = None                     # --compare-baseline: the loaded baseline
    save_to: Path | None = None                      # --save-baseline: where to write
    saved: Path | None = None
    verdicts: dict = field(default_factory=dict)     # impl id -> (verdict, summary), set at the end
    diagnosis: dict = field(default_factory=dict)    # rejected candidate id -> ["likely cause [...]: ..." lines]
    repro: dict = field(default_factory=dict)        # rejected candidate id -> the repro script written
    worker_runs: list = field(default_factory=list)  # pytest-xdist: the workers' training.Run records

    def export(self, runs: list, cache_events: list) -> str:
        """What a pytest-xdist worker hands its controller (config.workeroutput): what the
        controller cannot see in the test reports it receives."""
        return json.dumps({"deselected": {k: sorted(v) for k, v in self.deselected.items()},
                           "detection": self.detection, "runs": runs, "refcache": cache_events}, default=float)

    def merge(self, exported: str) -> list:
        """A worker's export merged into the controller's state; returns its reference cache events."""
        got = json.loads(exported)
        for impl, families in got["deselected"].items():
            self.deselected.setdefault(impl, set()).update(families)
        self.detection.update(got["detection"])
        self.worker_runs += got["runs"]
        return got["refcache"]


STATE = pytest.StashKey[RunState]()


def state(config) -> RunState:
    return config.stash[STATE]


# ------------------------------------------------------------------------------------------
# Outcomes and verdicts
# ------------------------------------------------------------------------------------------
def outcome(report) -> str:
    """The status of a pytest report (setup or call phase) in twinbench's vocabulary."""
    xfail = hasattr(report, "wasxfail")
    if report.skipped:
        return XFAIL if xfail else SKIP
    if report.passed:
        return XPASS if xfail else PASS
    if report.when != "call":
        return ERROR
    text = str(getattr(report, "longrepr", ""))
    if "XPASS(strict)" in text:
        return XPASS
    return ERROR if ERROR_PREFIX in text else FAIL


def detail_of(report) -> str:
    """The first lines of the message: the reason of a skip or xfail, the failure message."""
    if hasattr(report, "wasxfail"):
        return report.wasxfail
    if report.skipped:
        text = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
        return text[len("Skipped: "):] if text.startswith("Skipped: ") else text
    if report.passed:
        return ""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if lines and lines[0].startswith("Failed: "):
        lines[0] = lines[0][len("Failed: "):]
    return " ".join(lines[:2])[:400]


def worst(statuses) -> str:
    return max(statuses, key=_RANK.__getitem__, default="")


def verdict(cells: dict, known_bad: bool = False, architecture_only: bool = False,
            deselected=(), not_run=()) -> tuple[str, str]:
    """(verdict, summary) for one implementation's cells {check: Cell}.

    - REJECTED: a check failed, errored or an expected failure passed (the suite lost a catch);
    - INCOMPLETE: a recipe check could not run because the candidate has no recipe, unless
      --architecture-only deselected the recipe checks;
    - rejected as expected (known bad): every failure is a registered expected failure;
    - conforms: everything selected passed (skips for the environment, e.g. no GPU, are named).

    The summary names the families deselected (-m/-k) and those not in the run at all (a run of
    some test files only), so that a partial "conforms" never reads as a whole one.
    """
    counts = {s: sum(1 for c in cells.values() if c.status == s) for s in STATUSES}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    no_recipe = [k for k, c in cells.items() if c.status == SKIP and c.detail.startswith(NO_RECIPE)]
    if counts[FAIL] or counts[ERROR] or counts[XPASS]:
        word = "REJECTED"
    elif no_recipe:
        word = "INCOMPLETE (architecture only: no recipe)"
    elif counts[XFAIL]:
        word = "rejected as expected (known bad)" if known_bad else "REJECTED"
    else:
        word = "conforms (architecture only)" if architecture_only else "conforms"
    skipped = sorted({family(k) for k, c in cells.items() if c.status == SKIP and k not in no_recipe})
    if skipped:
        summary += "; skipped here: " + ", ".join(skipped)
    if deselected:
        summary += "; deselected: " + ", ".join(sorted(deselected))
    if not_run:
        summary += "; not in this run: " + ", ".join(not_run)
    return word, summary


# Families every implementation is judged on in a whole run (GPU and speed depend on the machine
# and the benchmark options; golden outputs are recorded for references and candidates, not known-bad).
JUDGED_FAMILIES = tuple(f for f, _ in FAMILIES if f not in ("GPU", "speed"))


def not_run(cells: dict, deselected=(), known_bad: bool = False) -> list:
    """The judged families with no check of this implementation in the run, and not deselected."""
    present = {family(k) for k in cells}
    return [f for f in JUDGED_FAMILIES if f not in present and f not in deselected
            and not (known_bad and f == "golden")]


def passed_verdict(word: str) -> bool:
    return word.startswith("conforms") or word.startswith("rejected as expected")


# ------------------------------------------------------------------------------------------
# The conformance matrix: families as columns
# ------------------------------------------------------------------------------------------
def _family_cell(cells: list) -> Cell:
    """Worst status over a family's checks, the worst margin among those with that status."""
    status = worst(c.status for c in cells)
    margins = [c.margin for c in cells if c.margin is not None and c.status == status]
    bad = [c for c in cells if c.status == status]
    return Cell(status, "; ".join(c.detail for c in bad if c.detail)[:600], max(margins, default=None),
                bad[0].nodeid if bad else "")


def matrix(run: RunState) -> tuple[list, list, dict, dict]:
    """(implementations, data subjects, {impl: {family: Cell}}, {impl: {check: Cell}})."""
    by_impl: dict = {}
    for (impl, check), cell in run.cells.items():
        by_impl.setdefault(impl, {})[check] = cell
    known = {s.id for s in run.specs}
    impls = sorted((i for i in by_impl if i in known or i.startswith("candidate")), key=str)
    data = sorted(i for i in by_impl if i not in impls)
    fams = {}
    for impl, checks in by_impl.items():
        groups: dict = {}
        for check, cell in checks.items():
            groups.setdefault(family(check), []).append(cell)
        fams[impl] = {f: _family_cell(cs) for f, cs in groups.items()}
    return impls, data, fams, by_impl


def _fmt_cell(cell: Cell | None) -> str:
    if cell is None:
        return "-"
    return cell.status + (f" {cell.margin:.2g}" if cell.margin is not None else "")


def write_conformance(out: Path, run: RunState, versions: dict, devices: dict, roofline: dict) -> list[Path]:
    """conformance.md, .html and .json: a row per implementation, a column per check family
    (worst status and, where measured, the worst margin = measured / tolerance), the reasons,
    the data checks in a section of their own, and links to the side products of the run."""
    impls, data, fams, by_impl = matrix(run)
    families = [f for f, _ in FAMILIES if any(f in fams[i] for i in impls)] + \
        (["other"] if any("other" in fams[i] for i in impls) else [])
    head = ["Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
            "Devices: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in devices.items()),
            "Roofline: " + (", ".join(f"{d} {g:.0f} GFLOP/s" for d, g in roofline.items()) or "not measured"),
            "Families with no check in this run: " + (", ".join(f for f, _ in FAMILIES if f not in families) or "none")]
    md = ["# twinbench conformance report", ""] + [f"{h}  " for h in head] + [
        "", "Cells: the worst status of the family's checks and, where the check measures one, the worst "
        "margin (measured / tolerance; below 1 passes).", "", "## Verdicts", ""]
    md += [f"- `{i}`: **{run.verdicts.get(i, ('', ''))[0]}** ({run.verdicts.get(i, ('', ''))[1]})" for i in impls]
    for impl, lines in run.diagnosis.items():
        md += ["", f"### Diagnosis of `{impl}`", ""] + [f"- {line}" for line in lines]
        if impl in run.repro:
            md.append(f"- repro: `{run.repro[impl]}` (exits 1 while the fault persists)")
    md += ["", "## Matrix", "", "| impl | verdict | " + " | ".join(families) + " |", "|---|---|" + "---|" * len(families)]
    for impl in impls:
        md.append(f"| {impl} | {run.verdicts.get(impl, ('',))[0]} | "
                  + " | ".join(_fmt_cell(fams[impl].get(f)) for f in families) + " |")
    notes = [(i, c, cell) for i in impls for c, cell in sorted(by_impl[i].items())
             if cell.status in (FAIL, ERROR, XPASS, XFAIL, SKIP) and cell.detail]
    md += ["", "## Reasons (fail, error, xpass, xfail, skip)", ""]
    md += [f"- <a id='r{n}'></a>`{i}` `{c}` **{cell.status}**: {cell.detail}" for n, (i, c, cell) in enumerate(notes)] \
        or ["none"]
    md += ["", "## Data checks", "", "| data | check | status | detail |", "|---|---|---|---|"]
    md += [f"| {d} | {c} | {cell.status} | {cell.detail} |" for d in data for c, cell in sorted(by_impl[d].items())]
    extras = _extras(out)
    for title, lines in extras:
        md += ["", f"## {title}", ""] + (lines or ["none written in this run"])
    payload = {"versions": versions, "devices": devices, "roofline_gflops": roofline, "families": families,
               "verdicts": {i: {"verdict": v, "summary": s, "diagnosis": run.diagnosis.get(i, []),
                                "repro": str(run.repro[i]) if i in run.repro else None}
                            for i, (v, s) in run.verdicts.items()},
               "matrix": {i: {f: vars(c) for f, c in fams[i].items()} for i in impls},
               "results": [{"impl": i, "check": c, "family": family(c), **vars(cell)}
                           for i in impls + data for c, cell in sorted(by_impl[i].items())]}
    written = [out / "conformance.md", out / "conformance.html", out / "conformance.json"]
    atomic_write(written[0], "\n".join(md) + "\n")
    atomic_write(written[1], _conformance_html(run, impls, data, fams, by_impl, families, head, notes, out))
    atomic_write(written[2], json.dumps(payload, indent=2, default=str))
    return written


def _extras(out: Path) -> list:
    def files(folder, pattern):
        return sorted((out / folder).glob(pattern)) if (out / folder).is_dir() else []

    speed = out / "speed.md"
    return [("Side-by-side summaries", [f"- [{p.stem}]({p.relative_to(out)})" for p in files("summaries", "*.md")]),
            ("Model diagrams (keras.utils.plot_model)", [f"![{p.stem}]({p.relative_to(out)})" for p in files("models", "*.png")]
             + [f"- {p.read_text().strip()}" for p in files("models", "*.txt")]),
            ("Trajectories", [f"- [{p.stem}]({p.relative_to(out)})" for p in files("trajectories", "*.png")]),
            ("Convergence curves", [f"![{p.stem}]({p.relative_to(out)})" for p in files("convergence", "*.png")]),
            ("Speed", ["See [speed.md](speed.md) and ![speed](speed.png)" if speed.exists() else
                       "not measured in this run (benchmarks disabled): `make bench` or `make conform`"])]


_COLOUR = {PASS: "#c8f0c8", FAIL: "#f8c8c8", ERROR: "#f0a0f0", XFAIL: "#f0e0c0", XPASS: "#f8a0a0", SKIP: "#e0e0e0"}
_SORT_JS = ("<script>document.querySelectorAll('th.s').forEach((th,i)=>th.onclick=()=>{const t=th.closest('table'),"
            "b=t.tBodies[0],r=[...b.rows],d=th.dataset.d=th.dataset.d==='a'?'d':'a';r.sort((x,y)=>{const "
            "p=x.cells[th.cellIndex].dataset.k||x.cells[th.cellIndex].innerText,q=y.cells[th.cellIndex].dataset.k||"
            "y.cells[th.cellIndex].innerText;return (d==='a'?1:-1)*p.localeCompare(q,undefined,{numeric:true})});"
            "r.forEach(x=>b.appendChild(x))})</script>")


_VERDICT_COLOUR = {"conforms": "#c8f0c8", "REJECTED": "#f8c8c8", "INCOMPLETE": "#f8e0a0", "rejected as expected": "#f0e0c0"}


def _verdict_td(run, impl) -> str:
    word, summary = run.verdicts.get(impl, ("", ""))
    colour = next((c for k, c in _VERDICT_COLOUR.items() if word.startswith(k)), "#fff")
    return (f"<td style='background:{colour}' data-k='{H.escape(word)}'><b>{H.escape(word)}</b>"
            f"<div class='sum'>{H.escape(summary)}</div></td>")


def _matrix_rows_html(run, impls, fams, families, notes) -> str:
    """One row per implementation: the verdict with its summary, then a cell per family that
    links to the first reason of a cell that did not pass."""
    first_note = {}
    for n, (i, c, _) in enumerate(notes):
        first_note.setdefault((i, family(c)), n)
    rows = []
    for impl in impls:
        tds = []
        for f in families:
            cell = fams[impl].get(f)
            if cell is None:
                tds.append("<td data-k='~' title='no check of this family ran'>-</td>")
                continue
            text = H.escape(_fmt_cell(cell))
            n = first_note.get((impl, f))
            link = f"<a href='#r{n}'>{text}</a>" if n is not None and cell.status != PASS else text
            tds.append(f"<td style='background:{_COLOUR.get(cell.status, '#fff')}' data-k='{_RANK.get(cell.status, 9)}' "
                       f"title='{H.escape(cell.detail)}'>{link}</td>")
        rows.append(f"<tr><th>{H.escape(impl)}</th>{_verdict_td(run, impl)}{''.join(tds)}</tr>")
    return "".join(rows)


def _diagnosis_html(run) -> str:
    html = ""
    for impl, lines in run.diagnosis.items():
        repro = (f"<li>repro: <code>{H.escape(str(run.repro[impl]))}</code> (exits 1 while the fault persists)</li>"
                 if impl in run.repro else "")
        html += (f"<h2>Diagnosis of {H.escape(impl)}</h2><ul>" + "".join(f"<li>{H.escape(x)}</li>" for x in lines)
                 + repro + "</ul>")
    return html


def _extras_html(out: Path) -> str:
    html = ""
    for title, lines in _extras(out):
        imgs = [p for p in lines if p.startswith("![")]
        html += f"<h2>{H.escape(title)}</h2>" + ("".join(
            f"<figure><img src='{H.escape(p.split('(')[1].rstrip(')'))}' style='max-width:100%'></figure>" for p in imgs)
            + "".join(f"<p>{H.escape(p)}</p>" for p in lines if p not in imgs) or "<p>none written in this run</p>")
    return html


_CSS = ("body{font-family:sans-serif;font-size:13px;max-width:1400px;margin:1em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 6px;font-size:12px;text-align:left;vertical-align:top}"
        "thead th{position:sticky;top:0;background:#eef}th.s{cursor:pointer}th.s:after{content:' \\2195';color:#888}"
        "a{color:inherit}li{margin:2px 0}.sum{color:#555;font-size:11px;max-width:34em}.legend span{padding:1px 6px;"
        "margin-right:4px;border:1px solid #ccc}:target{outline:2px solid #d33}")


def _legend_html() -> str:
    return ("<p class='legend'>" + "".join(f"<span style='background:{c}'>{s}</span>" for s, c in _COLOUR.items())
            + " Each cell: the worst status of that family's checks and, where measured, the worst margin "
              "(measured / tolerance: below 1 passes, above 1 fails). '-': no check of that family ran. "
              "Click a column header to sort, a cell that did not pass to jump to its message.</p>")


def _conformance_html(run, impls, data, fams, by_impl, families, head, notes, out) -> str:
    header = "".join(f"<th class='s'>{H.escape(f)}</th>" for f in families)
    reasons = "".join(f"<li id='r{n}'><code>{H.escape(i)}</code> <code>{H.escape(c)}</code> <b>{cell.status}</b>: "
                      f"{H.escape(cell.detail)}</li>" for n, (i, c, cell) in enumerate(notes))
    data_rows = "".join(f"<tr><td>{H.escape(d)}</td><td>{H.escape(c)}</td><td style='background:"
                        f"{_COLOUR.get(cell.status, '#fff')}'>{cell.status}</td><td>{H.escape(cell.detail)}</td></tr>"
                        for d in data for c, cell in sorted(by_impl[d].items()))
    return (f"<!doctype html><meta charset='utf-8'><title>twinbench conformance</title><style>{_CSS}</style>"
            "<h1>twinbench conformance report</h1>" + "".join(f"<p>{H.escape(h)}</p>" for h in head) + _legend_html()
            + f"<table><thead><tr><th class='s'>impl</th><th class='s'>verdict</th>{header}</tr></thead>"
              f"<tbody>{_matrix_rows_html(run, impls, fams, families, notes)}</tbody></table>" + _diagnosis_html(run)
            + f"<h2>Why a cell did not pass (fail, error, xpass, xfail, skip)</h2><ul>{reasons or '<li>none</li>'}</ul>"
            + "<h2>Data checks</h2><table><thead><tr><th class='s'>data</th><th class='s'>check</th><th class='s'>"
              f"status</th><th>detail</th></tr></thead><tbody>{data_rows}</tbody></table>" + _extras_html(out) + _SORT_JS)


# ------------------------------------------------------------------------------------------
# Detection
# ------------------------------------------------------------------------------------------
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


# ------------------------------------------------------------------------------------------
# Convergence
# ------------------------------------------------------------------------------------------
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


# ------------------------------------------------------------------------------------------
# Speed (pytest-benchmark results)
# ------------------------------------------------------------------------------------------
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
        flops = E.FLOPS_PER_SAMPLE[net]["train"] * (best["extra_info"].get("samples") or 0)
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
            lines.append(f"- GPU time to {E.GATE_PERMILLE[r['network']] / 10:g}% ({r['name']}): "
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
