"""The comparison with a saved baseline (``--compare-baseline NAME``): one test per entry of the
baseline, run after everything else (conftest.py orders them last and deselects them when no
baseline is given). suites/baseline.py says what each entry holds the run to."""

import pytest

from twinbench.suites import baseline, runstate

pytestmark = pytest.mark.baseline


def pytest_generate_tests(metafunc):
    if "entry" in metafunc.fixturenames:
        base = runstate.state(metafunc.config).baseline
        found = baseline.entries(base) if base is not None else []
        metafunc.parametrize("entry", found, ids=[baseline.entry_id(e) for e in found])


def test_against_baseline(entry, request):
    base = runstate.state(request.config).baseline
    status, message = baseline.compare_entry(entry, baseline.current_snapshot(request.config), base["name"])
    if status == "skip":
        pytest.skip(message)
    if status == "fail":
        pytest.fail(message, pytrace=False)
