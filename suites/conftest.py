"""Parametrize every ``test_*(subject, check)`` over the selected impls and the module's CHECKS."""

import pytest

from impls import registry
from suites.helpers import with_checks


def pytest_generate_tests(metafunc):
    if {"subject", "check"} <= set(metafunc.fixturenames) and hasattr(metafunc.module, "CHECKS"):
        specs = metafunc.config.twinbench_specs
        metafunc.parametrize(("subject", "check"), with_checks(specs, metafunc.module.CHECKS))


@pytest.fixture
def make_twin(subject):
    """A fresh twin per test (checks may change weights), seeded identically every time."""
    return lambda: registry.build(subject, seed=0)
