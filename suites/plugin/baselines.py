"""Baselines (``--save-baseline NAME``, ``--compare-baseline NAME``; suites/baseline.py): the
comparison tests run last, the run is saved at the end, improvements are listed."""

from __future__ import annotations

import pytest

from twinbench.impls import frameworks
from twinbench.suites import baseline, runstate
from twinbench.suites.plugin.xdist import is_worker


@pytest.hookimpl(hookwrapper=True)
def pytest_collection_modifyitems(config, items):
    """The --compare-baseline tests run after everything they compare, whatever -m/-k select
    (the selection applies to what is compared, not to the comparison); without a baseline they
    are deselected."""
    comparisons = [i for i in items if i.get_closest_marker("baseline")]
    items[:] = [i for i in items if not i.get_closest_marker("baseline")]
    yield
    if runstate.state(config).baseline is not None:
        items.extend(comparisons)
    elif comparisons:
        config.hook.pytest_deselected(items=comparisons)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    config, run = session.config, runstate.state(session.config)
    if is_worker(config) or run.save_to is None or not run.outcomes or exitstatus == pytest.ExitCode.INTERRUPTED:
        return
    snap = baseline.current_snapshot(config)
    snap["devices"] = frameworks.devices()
    snap["args"] = list(config.invocation_params.args)
    baseline.save(run.save_to, snap)
    run.saved = run.save_to


@pytest.hookimpl(tryfirst=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    tr, run = terminalreporter, runstate.state(config)
    if is_worker(config) or exitstatus == pytest.ExitCode.INTERRUPTED:
        return
    if run.saved:
        tr.write_line(f"baseline written to {run.saved}")
    if run.baseline is not None:
        better = baseline.improvements(run.baseline, baseline.current_snapshot(config))
        tr.section(f"improvements over baseline {run.baseline['name']}")
        for line in better or ["none"]:
            tr.write_line(line[:240])
