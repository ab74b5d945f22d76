"""Training-time randomness: the stochastic ops against the literal list, and training-mode
parity with the partner when both are fed the same masks.

The checks, their tolerances and sizes: ``suites/catalogue.py`` (``pytest --list-checks``); this
module only runs the catalogue's ``randomness`` group on every selected twin.
"""

import pytest

from twinbench.suites.helpers import run_check

pytestmark = pytest.mark.randomness
GROUP = "randomness"  # the plugin (suites/plugin/collection.py) parametrizes (subject, check) over catalogue.checks_for(subject, GROUP)


def test_randomness(subject, check, make_twin, record_property):
    run_check(check, make_twin, record_property)
