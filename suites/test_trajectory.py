"""Trajectory parity: both twins trained TRAJECTORY_STEPS steps from the same weights, dropout
off and on (shared masks).

The checks, their tolerances and sizes: ``suites/catalogue.py`` (``pytest --list-checks``); this
module only runs the catalogue's ``trajectory`` group on every selected twin.
"""

import pytest

from twinbench.suites.helpers import run_check

pytestmark = pytest.mark.trajectory
GROUP = "trajectory"  # the plugin (suites/plugin/collection.py) parametrizes (subject, check) over catalogue.checks_for(subject, GROUP)


def test_trajectory(subject, check, make_twin, record_property):
    run_check(check, make_twin, record_property)
