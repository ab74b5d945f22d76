"""Initialisation: a freshly built twin's weights against the reference's law (fixtures/expected.INIT_LAWS), judged over fresh builds. A port of trained weights only
deselects it: ``-m "not initialization"``.

The checks, their tolerances and sizes: ``suites/catalogue.py`` (``pytest --list-checks``); this
module only runs the catalogue's ``initialization`` group on every selected twin.
"""

import pytest

from twinbench.suites.helpers import run_check

pytestmark = pytest.mark.initialization
GROUP = "initialization"  # the plugin (suites/plugin/collection.py) parametrizes (subject, check) over catalogue.checks_for(subject, GROUP)


def test_initialization(subject, check, make_twin, record_property):
    run_check(check, make_twin, record_property)
