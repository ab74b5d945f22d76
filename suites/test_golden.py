"""Golden outputs: today's outputs against the ones recorded with the pinned versions.

The checks, their tolerances and sizes: ``suites/catalogue.py`` (``pytest --list-checks``); this
module only runs the catalogue's ``golden`` group on every selected twin.
"""

import pytest

from suites.helpers import run_check

pytestmark = pytest.mark.golden
GROUP = "golden"  # suites/conftest.py parametrizes (subject, check) over catalogue.checks_for(subject, GROUP)


def test_golden(subject, check, make_twin, record_property):
    run_check(check, make_twin, record_property)
