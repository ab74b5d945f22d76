"""The conformance report: conformance.md, .html and .json (``--conform-report DIR``).

A row per implementation, a column per check family (the catalogue's), each cell the worst
status of the family's checks and the worst margin; the reasons, the diagnosis and repro
scripts, the data checks in a section of their own, and links to the run's side products.
Every file is written atomically (fixtures.files).
"""

from __future__ import annotations

import html as H
import json
from pathlib import Path

from twinbench.fixtures.files import atomic_write
from twinbench.suites.catalogue import FAMILIES, family
from twinbench.suites.runstate import Cell, RunState
from twinbench.suites.status import Status
from twinbench.suites.verdict import matrix


def _fmt_cell(cell: Cell | None) -> str:
    if cell is None:
        return "-"
    return cell.status + (f" {cell.margin:.2g}" if cell.margin is not None else "")


def write_conformance(out: Path, run: RunState, versions: dict, devices: dict, roofline: dict) -> list[Path]:
    """conformance.md, .html and .json: a row per implementation, a column per check family
    (worst status and, where measured, the worst margin = measured / tolerance), the reasons,
    the data checks in a section of their own, and links to the side products of the run."""
    impls, data, fams, by_impl = matrix(run)
    families = [f for f in FAMILIES if any(f in fams[i] for i in impls)] + \
        (["other"] if any("other" in fams[i] for i in impls) else [])
    head = ["Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
            "Devices: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in devices.items()),
            "Roofline: " + (", ".join(f"{d} {g:.0f} GFLOP/s" for d, g in roofline.items()) or "not measured"),
            "Families with no check in this run: " + (", ".join(f for f in FAMILIES if f not in families) or "none")]
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
             if cell.status != Status.PASS and cell.detail]
    md += ["", "## Reasons (every status but pass)", ""]
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


_COLOUR = {Status.PASS: "#c8f0c8", Status.FAIL: "#f8c8c8", Status.ERROR: "#f0a0f0", Status.XFAIL: "#f0e0c0",
           Status.XPASS: "#f8a0a0", Status.SKIP: "#e0e0e0", Status.NO_RECIPE: "#f8e0a0",
           Status.NO_LITERALS: "#f8e0a0"}
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
            link = f"<a href='#r{n}'>{text}</a>" if n is not None and cell.status != Status.PASS else text
            tds.append(f"<td style='background:{_COLOUR.get(cell.status, '#fff')}' data-k='{Status(cell.status).rank}' "
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

