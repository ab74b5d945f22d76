"""Shapes: every layer's input and output shape against the literal tables in fixtures/.

The checks, their tolerances and sizes: ``suites/catalogue.py`` (``pytest --list-checks``); this
module only runs the catalogue's ``shapes`` group on every selected twin.
"""

import pytest

from twinbench.suites.helpers import run_check

pytestmark = pytest.mark.shapes
GROUP = "shapes"  # the plugin (suites/plugin/collection.py) parametrizes (subject, check) over catalogue.checks_for(subject, GROUP)


def test_shapes(subject, check, make_twin, record_property):
    run_check(check, make_twin, record_property)
