"""Convergence: accuracy gates, MLPerf-style time-to-accuracy, and the frameworks' agreement.

The checks (``suites/checks/convergence.py``) need pytest's options (``--seeds``,
``--full-recipe``) and record their figures with ``record_property``; the catalogue's
``convergence_cases`` says which subjects run them. Runs for each framework's primary reference
and for --impl candidates; ``reports/convergence/<network>.json`` and ``.png`` hold every epoch.
"""

from __future__ import annotations

import pytest

from twinbench.impls.adapter import CandidateError, NoRecipe
from twinbench.suites import catalogue, runstate
from twinbench.suites.helpers import parametrize
from twinbench.suites.status import NoRecipeSkip

pytestmark = pytest.mark.convergence


def pytest_generate_tests(metafunc):
    metafunc.parametrize(("subject", "check"),
                         parametrize(catalogue.convergence_cases(runstate.state(metafunc.config).candidates)))


def test_convergence(subject, check, request, record_property):
    __tracebackhide__ = True
    failure = None
    try:
        check(subject, request.config, record_property)
    except NoRecipe as exc:
        raise NoRecipeSkip(f"no recipe: {exc}") from None
    except (AssertionError, CandidateError) as exc:
        failure = str(exc).split("\nassert ")[0]
    if failure is not None:
        pytest.fail(failure, pytrace=False)
