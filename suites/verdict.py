"""The verdict rule and the conformance matrix: how cells become a verdict on an implementation.

- ``verdict``: the one rule that turns an implementation's cells into a ``Verdict``
  (suites/status.py);
- ``matrix``: the cells grouped by implementation and by family (the catalogue's families).
"""

from __future__ import annotations

from twinbench.suites.catalogue import FAMILIES, family
from twinbench.suites.runstate import Cell, RunState
from twinbench.suites.status import Status, Verdict, worst


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


def verdict(cells: dict, known_bad: bool = False, architecture_only: bool = False,
            deselected=(), not_run=()) -> tuple[Verdict, str]:
    """(verdict, summary) for one implementation's cells {check: Cell}.

    - REJECTED: a check failed, errored or an expected failure passed (the suite lost a catch);
    - INCOMPLETE: a recipe check could not run because the candidate has no recipe, unless
      --architecture-only deselected the recipe checks; or (INCOMPLETE_LITERALS) a check needs a
      literal a user's pair has not recorded (--record-literals);
    - rejected as expected (known bad): every failure is a registered expected failure;
    - conforms: everything selected passed (skips for the environment, e.g. no GPU, are named).

    The summary names the families deselected (-m/-k) and those not in the run at all (a run of
    some test files only), so that a partial "conforms" never reads as a whole one.
    """
    counts = {s: sum(1 for c in cells.values() if c.status == s) for s in Status}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    if counts[Status.FAIL] or counts[Status.ERROR] or counts[Status.XPASS]:
        word = Verdict.REJECTED
    elif counts[Status.NO_RECIPE]:
        word = Verdict.INCOMPLETE
    elif counts[Status.NO_LITERALS]:
        word = Verdict.INCOMPLETE_LITERALS
    elif counts[Status.XFAIL]:
        word = Verdict.KNOWN_BAD if known_bad else Verdict.REJECTED
    else:
        word = Verdict.CONFORMS_ARCHITECTURE if architecture_only else Verdict.CONFORMS
    skipped = sorted({family(k) for k, c in cells.items() if c.status == Status.SKIP})
    if skipped:
        summary += "; skipped here: " + ", ".join(skipped)
    present = {family(k) for k in cells}
    if set(deselected) - present:
        summary += "; deselected: " + ", ".join(sorted(set(deselected) - present))
    if set(deselected) & present:  # some of a family's checks ran, some were deselected
        summary += "; partly deselected: " + ", ".join(sorted(set(deselected) & present))
    if not_run:
        summary += "; not in this run: " + ", ".join(not_run)
    return word, summary


# Families every implementation is judged on in a whole run (GPU and speed depend on the machine
# and the benchmark options; data checks judge the datasets; golden outputs are recorded for
# references and candidates, not known-bad ones).
JUDGED_FAMILIES = tuple(f for f in FAMILIES if f not in ("GPU", "speed", "data"))


def not_run(cells: dict, deselected=(), known_bad: bool = False) -> list:
    """The judged families with no check of this implementation in the run, and not deselected."""
    present = {family(k) for k in cells}
    return [f for f in JUDGED_FAMILIES if f not in present and f not in deselected
            and not (known_bad and f == "golden")]


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

