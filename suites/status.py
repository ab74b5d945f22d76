"""twinbench's one vocabulary: the status of a check's outcome and the verdict on a twin.

A status is decided from what happened, never parsed back from a message:

- a check's own outcome (``suites.helpers.run_one``) is a ``Status``;
- in a pytest run, the status travels on the test report as ``twinbench_status`` (its value, a
  plain string, so that pytest-xdist can carry it), set by ``suites.plugin.session`` from the
  exception the test raised: ``CheckCrashed`` is an ``ERROR`` (twinbench's own crash, never a
  verdict on the twin), ``NoRecipeSkip`` is ``NO_RECIPE`` (a recipe check on a model-only
  candidate), and pytest's own outcomes give the rest.
"""

from __future__ import annotations

from enum import StrEnum

import pytest


class Status(StrEnum):
    """The outcome of one check on one subject (a conformance cell)."""

    PASS = "pass"
    FAIL = "fail"            # the twin does not conform: the check's message says where and by how much
    ERROR = "error"          # the check itself crashed (a fixture or the harness): never counted as a kill
    SKIP = "skip"            # the environment cannot run it (no GPU, no TensorFlow)
    NO_RECIPE = "no recipe"  # a recipe check on a candidate that declares no recipe
    NO_LITERALS = "no literals"  # a check that needs a literal a user's pair has not recorded (--record-literals)
    XFAIL = "xfail"          # an expected failure (fixtures/xfails.py) that failed, as expected
    XPASS = "xpass"          # an expected failure that passed: the suite lost a catch

    @property
    def rank(self) -> int:
        """The worst status of a family's checks is the family's."""
        return _RANK[self]

    @property
    def exit_code(self) -> int:
        """A repro script's exit status: 1 while the fault persists, 0 once fixed, 2 otherwise."""
        return {Status.FAIL: 1, Status.PASS: 0}.get(self, 2)


_RANK = {Status.PASS: 0, Status.SKIP: 1, Status.NO_LITERALS: 2, Status.NO_RECIPE: 3, Status.XFAIL: 4,
         Status.XPASS: 5, Status.FAIL: 6, Status.ERROR: 7}


def worst(statuses) -> Status | str:
    return max((Status(s) for s in statuses), key=lambda s: s.rank, default="")


class Verdict(StrEnum):
    """What a run says of one implementation (``suites.verdict.verdict``)."""

    CONFORMS = "conforms"
    CONFORMS_ARCHITECTURE = "conforms (architecture only)"
    REJECTED = "REJECTED"
    INCOMPLETE = "INCOMPLETE (architecture only: no recipe)"
    INCOMPLETE_LITERALS = "INCOMPLETE (no recorded literals)"
    KNOWN_BAD = "rejected as expected (known bad)"

    @property
    def passed(self) -> bool:
        """Exit status 0 for a candidate run: it conforms, or a known-bad twin failed as registered."""
        return self in (Verdict.CONFORMS, Verdict.CONFORMS_ARCHITECTURE, Verdict.KNOWN_BAD)


class CheckCrashed(pytest.fail.Exception):
    """A check raised something other than a verdict on the twin: reported as ``Status.ERROR``."""


class NoRecipeSkip(pytest.skip.Exception):
    """A recipe check on a model-only candidate: reported as ``Status.NO_RECIPE``."""


class NoLiteralsSkip(pytest.skip.Exception):
    """A check needing a literal a user's pair has not recorded: reported as ``Status.NO_LITERALS``."""


REPORT_ATTRIBUTE = "twinbench_status"


def of_report(report) -> Status:
    """The status a test report carries (set by the plugin); for a report that carries none (a
    test outside twinbench's hooks), the status pytest's own outcome gives."""
    carried = getattr(report, REPORT_ATTRIBUTE, None)
    if carried is not None:
        return Status(carried)
    xfail = hasattr(report, "wasxfail")
    if report.skipped:
        return Status.XFAIL if xfail else Status.SKIP
    if report.passed:
        return Status.XPASS if xfail else Status.PASS
    return Status.FAIL if report.when == "call" else Status.ERROR


def decide(report, excinfo) -> Status:
    """The status of a report from what its phase raised (``excinfo``, None when nothing did)."""
    if excinfo is not None and excinfo.errisinstance(CheckCrashed):
        return Status.ERROR
    if excinfo is not None and excinfo.errisinstance(NoRecipeSkip):
        return Status.NO_RECIPE
    if excinfo is not None and excinfo.errisinstance(NoLiteralsSkip):
        return Status.NO_LITERALS
    if report.failed and excinfo is None and report.when == "call":
        return Status.XPASS  # the body raised nothing, yet the report failed: a strict expected failure passed
    return of_report(report)
