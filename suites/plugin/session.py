"""The session: each test report's status and conformance cell, recorded in the run state; at the
end, the verdicts, the diagnosis of rejected candidates, and the exit status.

The status is decided here from what the test raised (``suites.status.decide``) and travels on
the report as ``twinbench_status``, to a pytest-xdist controller too; nothing reads it back from
a message.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from twinbench.impls import registry
from twinbench.suites import catalogue, runstate, verdict
from twinbench.suites.plugin.xdist import is_worker
from twinbench.suites.status import REPORT_ATTRIBUTE, Status, Verdict, decide


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """The status and the conformance cell travel on the report."""
    rep = (yield).get_result()
    setattr(rep, REPORT_ATTRIBUTE, decide(rep, call.excinfo).value)
    key = getattr(item, "twinbench_cell", None)
    if key is not None:
        rep.twinbench_cell = key


class _Recorder:
    """Outcomes, measurements and cells, from the test reports: in this process, or on the
    controller of a pytest-xdist run as the workers' reports arrive. Bound to the run state."""

    def __init__(self, run: runstate.RunState):
        self.run = run

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            _record(self.run, report)


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    """After suites/plugin/options.py made the run state."""
    config.pluginmanager.register(_Recorder(runstate.state(config)), "twinbench-recorder")


def _record(run, rep):
    status = Status(getattr(rep, REPORT_ATTRIBUTE, None) or decide(rep, None))
    run.outcomes[rep.nodeid] = status
    measured = {k: v for k, v in rep.user_properties if isinstance(v, (int, float, str, type(None)))}
    if measured:
        run.measured[rep.nodeid] = measured
    key = getattr(rep, "twinbench_cell", None)
    if key is not None:
        margin = measured.get("margin")
        run.cells[tuple(key)] = runstate.Cell(status, verdict.detail_of(rep),
                                              margin if isinstance(margin, float) else None, rep.nodeid)


def _verdicts(run: runstate.RunState) -> dict:
    impls, _, _, by_impl = verdict.matrix(run)
    bad = {s.id for s in run.specs if s.role == "known_bad"}
    recipe = set(catalogue.RECIPE_FAMILIES) if run.architecture_only else set()
    verdicts = {}
    for i in impls:
        deselected = run.deselected.get(i, set()) - recipe
        verdicts[i] = verdict.verdict(by_impl[i], i in bad, run.architecture_only, deselected,
                                      verdict.not_run(by_impl[i], deselected | recipe, i in bad))
    return verdicts


def _diagnose(config, run, items):
    """Each rejected candidate: its likely causes (suites/diagnosis.py) and, with --conform-report,
    a repro script of its first failing check (suites/repro.py), minimised when the check ran in
    this process (not on a pytest-xdist worker)."""
    from twinbench.suites import diagnosis, repro

    checks = {i.nodeid: i.callspec.params["check"] for i in items
              if "check" in getattr(getattr(i, "callspec", None), "params", {})}
    _, _, _, by_impl = verdict.matrix(run)
    out = config.getoption("--conform-report")
    for spec in run.candidates:
        if spec.id not in run.verdicts or run.verdicts[spec.id][0] is not Verdict.REJECTED:
            continue
        failed = [c for c, cell in sorted(by_impl[spec.id].items()) if cell.status in (Status.FAIL, Status.ERROR)]
        run.diagnosis[spec.id] = diagnosis.explain(spec, failed, {c: by_impl[spec.id][c].detail for c in failed})
        if out and failed:
            nodeid = by_impl[spec.id][failed[0]].nodeid
            run.repro[spec.id] = repro.write(Path(out) / "repro", spec, failed[0], nodeid, checks.get(nodeid),
                                             lambda spec=spec: registry.build(spec, seed=0))


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if is_worker(config):
        return  # suites/plugin/xdist.py hands the state to the controller
    run = runstate.state(config)
    run.verdicts = _verdicts(run)  # once: the exit status here, the terminal summary and the report after
    if exitstatus != pytest.ExitCode.INTERRUPTED and not config.getoption("--no-diagnosis"):
        _diagnose(config, run, session.items)
    if run.candidates and exitstatus == pytest.ExitCode.OK:
        if any(not word.passed for word, _ in run.verdicts.values()):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED  # INCOMPLETE: nothing failed, but not everything ran
