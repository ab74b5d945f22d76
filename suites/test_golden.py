"""Golden outputs: today's outputs against the ones recorded with the pinned versions.

The checks, their tolerances and sizes: ``suites/catalogue.py`` (``pytest --list-checks``); this
module only runs the catalogue's ``golden`` group on every selected twin.
"""

import pytest

from twinbench.suites.helpers import run_check

pytestmark = pytest.mark.golden
GROUP = "golden"  # the plugin (suites/plugin/collection.py) parametrizes (subject, check) over catalogue.checks_for(subject, GROUP)


def test_golden(subject, check, make_twin, record_property):
    run_check(check, make_twin, record_property)


@pytest.mark.selftest
def test_an_output_declared_in_another_form_is_judged_by_what_it_means():
    """A correct port whose log-softmax output is declared as logits (the corpus's
    known_good-torch_mnist_cnn_log_softmax_as_logits) matches the golden recording: softmax
    logits are compared as log-probabilities, where a per-row constant is no change."""
    from twinbench.impls import registry
    from twinbench.suites.checks import golden

    entry = next(e for e in registry.corpus() if e.spec.id == "known_good-torch_mnist_cnn_log_softmax_as_logits")
    assert golden.check_golden_outputs(registry.build(entry.spec, seed=0))["golden_max_abs_diff"] <= 1e-5
