"""Equivalence: the twins compute the same function and train the same way, proven numerically
(forward, loss, gradient, optimizer step, schedule, weight transfer, checkpoints).

The checks, their tolerances and sizes: ``suites/catalogue.py`` (``pytest --list-checks``); this
module only runs the catalogue's ``equivalence`` group on every selected twin.
"""

import pytest

from twinbench.suites.helpers import run_check

pytestmark = pytest.mark.equivalence
GROUP = "equivalence"  # the plugin (suites/plugin/collection.py) parametrizes (subject, check) over catalogue.checks_for(subject, GROUP)


def test_equivalence(subject, check, make_twin, record_property):
    run_check(check, make_twin, record_property)
