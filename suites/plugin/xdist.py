"""pytest-xdist: a worker runs tests and hands its controller what the test reports do not carry
(``RunState.export``); the controller merges it (``RunState.merge``) and writes every report once.
"""

from __future__ import annotations

import pytest

from twinbench.suites import runstate


def is_worker(config) -> bool:
    """A pytest-xdist worker (its controller merges and reports)."""
    return hasattr(config, "workerinput")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """A worker finished: merge what its reports did not carry."""
    exported = getattr(node, "workeroutput", {}).get("twinbench")
    if exported:
        runstate.state(node.config).merge(exported)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    if is_worker(session.config):
        session.config.workeroutput["twinbench"] = runstate.state(session.config).export()
