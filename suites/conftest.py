"""Parametrize every ``test_*(subject, check)`` over the selected impls and the module's CHECKS."""

import pytest

from impls import registry
from suites import report
from suites.helpers import module_checks, with_checks


def pytest_generate_tests(metafunc):
    module = metafunc.module
    if {"subject", "check"} <= set(metafunc.fixturenames) and (
            hasattr(module, "CHECKS") or hasattr(module, "checks_for")):
        specs = report.state(metafunc.config).specs
        params = [p for s in specs for p in with_checks([s], module_checks(module, s))]
        metafunc.parametrize(("subject", "check"), params)


@pytest.fixture
def make_twin(subject):
    """A fresh twin per test (checks may change weights), seeded identically every time."""
    return lambda: registry.build(subject, seed=0)
