"""The side-by-side diff of two saved runs (baselines): ``python -m twinbench.suites.upgrade_report A.json
B.json --from tensorflow==2.20.0 --to tensorflow==2.21.0 --out reports/upgrade-...`` writes
OUT.md, OUT.html and OUT.png (accuracy curves overlaid). nox -s upgrade calls it."""

from __future__ import annotations

import argparse
import base64
import html
import json
import sys
from pathlib import Path

from twinbench.fixtures.files import atomic_write, plot
from twinbench.fixtures import tolerances as T
from twinbench.suites import baseline


def _load(path: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SystemExit(f"cannot read run {path}: {exc}")


def _short(nodeid: str) -> str:
    return nodeid.split("::", 1)[-1]


def rows(a: dict, b: dict) -> dict:
    """Sections of (name, value in A, value in B, changed?, worse?)."""
    out = {"versions": [], "checks": [], "measurements": [], "convergence": [], "benchmarks": []}
    for k in sorted(set(a["versions"]) | set(b["versions"])):
        va, vb = a["versions"].get(k), b["versions"].get(k)
        out["versions"].append((k, va, vb, va != vb, False))
    for nodeid in sorted(set(a["outcomes"]) | set(b["outcomes"])):
        if "test_baseline.py" in nodeid:
            continue
        va, vb = a["outcomes"].get(nodeid, "-"), b["outcomes"].get(nodeid, "-")
        out["checks"].append((_short(nodeid), va, vb, va != vb, va == "pass" and vb not in ("pass", "-")))
    for nodeid in sorted(set(a["measured"]) | set(b["measured"])):
        ma, mb = a["measured"].get(nodeid, {}), b["measured"].get(nodeid, {})
        for key in sorted(set(ma) | set(mb)):
            va, vb = ma.get(key), mb.get(key)
            changed = va != vb
            worse = key == "golden_max_abs_diff" and baseline.golden_drifted(vb)
            out["measurements"].append((f"{_short(nodeid)} {key}", va, vb, changed, worse))
    for impl in sorted(set(a["convergence"]) | set(b["convergence"])):
        ca, cb = a["convergence"].get(impl, {}), b["convergence"].get(impl, {})
        for key in ("accuracy", "epochs_to_target", "seconds_to_target"):
            va, vb = ca.get(key), cb.get(key)
            worse = False
            if key == "accuracy" and va is not None and vb is not None:
                worse = baseline.accuracy_dropped(va, vb)
            if key == "epochs_to_target":
                worse = baseline.epochs_grew(va, vb)
            out["convergence"].append((f"{impl} {key}", va, vb, va != vb, worse))
    for name in sorted(set(a["benchmarks"]) | set(b["benchmarks"])):
        va, vb = a["benchmarks"].get(name), b["benchmarks"].get(name)
        worse = baseline.slower(va, vb)
        out["benchmarks"].append((name, va, vb, va != vb, worse))
    return out


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "-" if v is None else str(v)


def _delta(va, vb) -> str:
    """The measured change: B - A for numbers (relative too for benchmark-like values), else -."""
    if isinstance(va, (int, float)) and isinstance(vb, (int, float)) and not isinstance(va, bool):
        d = vb - va
        rel = f" ({100 * d / va:+.1f}%)" if va else ""
        return f"{d:+.3g}{rel}"
    return "-"


def _plot(a: dict, b: dict, label_a: str, label_b: str, path: Path) -> bool:
    impls = sorted(set(a["convergence"]) | set(b["convergence"]))
    if not impls:
        return False

    def draw(fig, axes):
        for ax, impl in zip(axes[0], impls):
            for run, label, style in ((a, label_a, "-o"), (b, label_b, "--s")):
                curve = run["convergence"].get(impl, {}).get("curve") or []
                ax.plot(range(1, len(curve) + 1), [100 * c for c in curve], style, label=label)
            ax.set(title=impl, xlabel="epoch", ylabel="test accuracy (%)")
            ax.legend(fontsize=7)
        fig.tight_layout()

    plot(path, draw, figsize=(4.5 * len(impls), 3.5), dpi=80, ncols=len(impls), squeeze=False)
    return True


def _tally(sections: dict) -> tuple[list, int, int]:
    """(the regressions as (section, row), the number of changed rows, the number of rows)."""
    regressions = [(s, r) for s, rs in sections.items() for r in rs if r[4]]
    changes = sum(1 for rs in sections.values() for r in rs if r[3])
    total = sum(len(rs) for rs in sections.values())
    return regressions, changes, total


def _section_md(name: str, rs: list, label_a: str, label_b: str) -> list[str]:
    """One section's heading and, when something changed, its table of changed rows (regressions bold)."""
    changed = [r for r in rs if r[3]]
    md = [f"## {name.capitalize()}: {len(changed)} changed, {len(rs) - len(changed)} unchanged (not listed)", ""]
    if not changed:
        return md
    md += [f"| {name} | {label_a} | {label_b} | delta |", "|---|---|---|---|"]
    for key, va, vb, _, worse in changed:
        mark = "**" if worse else ""
        md.append(f"| {mark}{key}{mark} | {_fmt(va)} | {mark}{_fmt(vb)}{mark} | {_delta(va, vb)} |")
    return md + [""]


def _markdown(sections: dict, label_a: str, label_b: str, better: list[str], png_name: str | None) -> list[str]:
    """The report's lines in Markdown: summary, regressions, improvements, curves, then each section."""
    regressions, changes, total = _tally(sections)
    md = [f"# Upgrade report: {label_a} -> {label_b}", "",
          f"{changes} of {total} rows changed, {len(regressions)} regressions (bold). Thresholds: accuracy drop > "
          f"{T.BASELINE_ACCURACY_DROP_POINTS} points, epochs to gate > +{T.BASELINE_EXTRA_EPOCHS}, golden drift > "
          f"{T.GOLDEN_ATOL:g}, benchmark median > +{100 * T.BASELINE_SLOWDOWN:.0f}%.", ""]
    if regressions:
        md += ["## Regressions", ""] + [f"- **{s}**: {r[0]}: {_fmt(r[1])} -> {_fmt(r[2])} ({_delta(r[1], r[2])})"
                                        for s, r in regressions] + [""]
    md += ["## Improvements", ""] + ([f"- {line}" for line in better] or ["- none"]) + [""]
    if png_name is not None:
        md += ["## Accuracy curves", "", f"![accuracy curves]({png_name})", ""]
    for name, rs in sections.items():
        md += _section_md(name, rs, label_a, label_b)
    return md


def _section_html(name: str, rs: list, label_a: str, label_b: str) -> list[str]:
    """One section's heading and, when something changed, its table (changes yellow, regressions red)."""
    changed = [r for r in rs if r[3]]
    same = len(rs) - len(changed)
    body = [f"<h2>{html.escape(name.capitalize())}: {len(changed)} changed, {same} unchanged (not listed)</h2>"]
    if not changed:
        return body
    body.append(f"<table><tr><th>{html.escape(name)}</th><th>{html.escape(label_a)}</th>"
                f"<th>{html.escape(label_b)}</th><th>delta</th></tr>")
    for key, va, vb, _, worse in changed:
        cls = ' class="worse"' if worse else ' class="changed"'
        body.append(f"<tr{cls}><td>{html.escape(key)}</td><td>{html.escape(_fmt(va))}</td>"
                    f"<td>{html.escape(_fmt(vb))}</td><td>{html.escape(_delta(va, vb))}</td></tr>")
    return body + ["</table>"]


def _html(sections: dict, label_a: str, label_b: str, better: list[str], png: Path | None) -> str:
    """The report as one self-contained HTML page, the accuracy curves embedded."""
    regressions, changes, total = _tally(sections)
    body = [line for name, rs in sections.items() for line in _section_html(name, rs, label_a, label_b)]
    img = (f'<img alt="accuracy curves" src="data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}">'
           if png is not None else "")
    return ("<!doctype html><meta charset='utf-8'><title>upgrade report</title><style>body{font-family:sans-serif}"
            "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}"
            ".changed{background:#fff6cc}.worse{background:#f8c8c8;font-weight:bold}</style>"
            f"<h1>Upgrade report: {html.escape(label_a)} &rarr; {html.escape(label_b)}</h1>"
            f"<p>{changes} of {total} rows changed, {len(regressions)} regressions (red); changes in yellow; "
            "unchanged rows are counted, not listed.</p>"
            f"<h2>Improvements</h2><ul>{''.join(f'<li>{html.escape(x)}</li>' for x in better) or '<li>none</li>'}</ul>"
            f"{img}{''.join(body)}")


def write(a: dict, b: dict, label_a: str, label_b: str, out: Path) -> list[Path]:
    """Only what changed is listed, with its measured delta; unchanged rows are counted."""
    sections = rows(a, b)
    md_path, html_path, png = (out.parent / f"{out.name}{ext}" for ext in (".md", ".html", ".png"))
    has_plot = _plot(a, b, label_a, label_b, png)
    better = baseline.improvements({**a, "name": label_a}, b)
    md = _markdown(sections, label_a, label_b, better, png.name if has_plot else None)
    page = _html(sections, label_a, label_b, better, png if has_plot else None)
    atomic_write(md_path, "\n".join(md) + "\n")
    atomic_write(html_path, page)
    return [md_path, html_path] + ([png] if has_plot else [])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m twinbench.suites.upgrade_report", description=__doc__.splitlines()[0])
    p.add_argument("run_a")
    p.add_argument("run_b")
    p.add_argument("--from", dest="label_a", required=True)
    p.add_argument("--to", dest="label_b", required=True)
    p.add_argument("--out", required=True, help="output path without suffix")
    args = p.parse_args(argv)
    written = write(_load(args.run_a), _load(args.run_b), args.label_a, args.label_b, Path(args.out))
    print("upgrade report written to " + ", ".join(map(str, written)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
