"""Parameters: per-layer and total counts, all trainable, against literals in fixtures/.

The checks, their tolerances and sizes: ``suites/catalogue.py`` (``pytest --list-checks``); this
module only runs the catalogue's ``parameters`` group on every selected twin.
"""

import pytest

from twinbench.suites.helpers import run_check

pytestmark = pytest.mark.parameters
GROUP = "parameters"  # the plugin (suites/plugin/collection.py) parametrizes (subject, check) over catalogue.checks_for(subject, GROUP)


def test_parameters(subject, check, make_twin, record_property):
    run_check(check, make_twin, record_property)
