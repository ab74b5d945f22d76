"""The comparison with a saved baseline (``--compare-baseline NAME``): one test per entry of the
baseline, run after everything else (conftest.py orders them last and deselects them when no
baseline is given). suites/baseline.py says what each entry holds the run to."""

import pytest

from suites import baseline

pytestmark = pytest.mark.baseline


def pytest_generate_tests(metafunc):
    if "entry" in metafunc.fixturenames:
        base = metafunc.config.twinbench_baseline
        found = baseline.entries(base) if base is not None else []
        metafunc.parametrize("entry", found, ids=[baseline.entry_id(e) for e in found])


def test_against_baseline(entry, request):
    base = request.config.twinbench_baseline
    status, message = baseline.judge(entry, baseline.current_snapshot(request.config), base["name"])
    if status == "absent":
        pytest.skip(message)
    if status == "fail":
        pytest.fail(message, pytrace=False)
