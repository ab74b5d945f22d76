"""GPU conformance: forward parity on the device (fp32, TF32 off) against the CPU forward. Skipped
with the reason on a machine without a GPU; failed under --require-gpu.

The checks, their tolerances and sizes: ``suites/catalogue.py`` (``pytest --list-checks``); this
module only runs the catalogue's ``gpu`` group on every selected twin.
"""

import pytest

from twinbench.suites.helpers import run_check

pytestmark = pytest.mark.gpu
GROUP = "gpu"  # the plugin (suites/plugin/collection.py) parametrizes (subject, check) over catalogue.checks_for(subject, GROUP)


def test_gpu(subject, check, make_twin, record_property):
    run_check(check, make_twin, record_property)
