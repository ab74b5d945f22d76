"""The end of a run on the terminal and on disk: the conformance matrix with each verdict, the
detection summary, and the report files (conformance, speed, detection)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from twinbench.impls import frameworks
from twinbench.suites import conformance_report, detection_report, refcache, runstate, speed_report, verdict
from twinbench.suites.plugin.options import repro_cap, roofline, roofline_line
from twinbench.suites.plugin.xdist import is_worker
from twinbench.suites.status import Status


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if is_worker(config):
        return
    tr, run = terminalreporter, runstate.state(config)
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        tr.write_line("run interrupted: no report, baseline or detection file written; the previous ones are intact")
        return
    out = Path(config.getoption("--conform-report") or runstate.REPORTS)
    bench = getattr(config, "_benchmarksession", None)
    if bench is not None and not bench.disabled and bench.benchmarks:
        written = speed_report.write_speed_report(bench.benchmarks, out, frameworks.versions(), frameworks.devices(),
                                                  roofline())
        if written:
            tr.write_line(f"speed table and chart written to {', '.join(map(str, written))}")
        tr.write_line(roofline_line())
    if refcache.summary():
        tr.write_line(refcache.summary())
    if run.detection:
        _detection_summary(tr, run)
    if run.verdicts:
        _matrix_summary(tr, run)
        cap = repro_cap()
        if cap:
            tr.write_line(cap)
    if config.getoption("--conform-report") and run.cells:
        written = conformance_report.write_conformance(out, run, frameworks.versions(), frameworks.devices(),
                                                       roofline())
        tr.write_line("conformance report written to " + ", ".join(map(str, written)))
        if not (bench is not None and not bench.disabled and bench.benchmarks):
            tr.write_line(roofline_line())


# the cells a verdict line lists
_SHOWN = (Status.FAIL, Status.ERROR, Status.XPASS, Status.XFAIL, Status.NO_RECIPE, Status.NO_LITERALS)


def _matrix_summary(tr, run):
    impls, _, _, by_impl = verdict.matrix(run)
    tr.section("twinbench conformance matrix")
    width = max(len(i) for i in impls)
    took = time.perf_counter() - run.started
    for impl in impls:
        word, summary = run.verdicts[impl]
        tr.write_line(f"{impl:<{width}}  {word}  ({summary}) in {took:.0f} s")
        for check, cell in sorted(by_impl[impl].items()):
            if cell.status in _SHOWN:
                tr.write_line(f"{'':<{width}}    {cell.status:<5} {check}: {cell.detail}"[:240])
        for line in run.diagnosis.get(impl, []):
            tr.write_line(f"{'':<{width}}    {line}")
        if impl in run.repro:
            tr.write_line(f"{'':<{width}}    repro: python {run.repro[impl]}  (exits 1 while the fault persists)")


def _detection_summary(tr, run):
    written, d = detection_report.write_detection(runstate.REPORTS, run.detection, frameworks.versions())
    tr.section("twinbench detection")
    if d["faulty"]:
        tr.write_line(f"kill rate: {d['killed']}/{d['faulty']} faulty candidates rejected "
                      f"({100 * d['kill_rate']:.1f}%), {d['mutants']} of the candidates generated mutants")
    margin = "none measured" if d["min_margin"] is None else f"{d['min_margin']:.3g}"
    tr.write_line(f"false rejections: {len(d['false_rejections'])} of {d['equivalent']} correct candidates; "
                  f"errors: {len(d['errors'])}; smallest margin of a kill: {margin}")
    for name in list(d["survivors"]) + d["false_rejections"] + d["errors"]:
        tr.write_line(f"  {name}: {run.detection[name]['first_message'] or 'survived every check'}"[:240])
    tr.write_line(f"written to {', '.join(map(str, written))}")
