"""Summaries: torchinfo and keras.Model.summary side by side in reports/summaries/, each checked
against the literal parameter total (suites/checks/summaries.py)."""

import pytest

from twinbench.fixtures import expected as E
from twinbench.suites.checks.summaries import check_summaries_side_by_side
from twinbench.suites.helpers import parametrize

pytestmark = pytest.mark.summaries


@pytest.mark.parametrize(("subject", "check"), parametrize((net, check_summaries_side_by_side) for net in E.NETWORKS))
def test_summaries(subject, check):
    check(subject)
