"""Repro minimisation (suites/repro.py): the smallest real batch at which the candidate still fails
and the correct twins still pass; the caller's environment is left as it was."""

import os

import pytest

from twinbench.suites import helpers, repro

pytestmark = pytest.mark.selftest


def _needs_eight(twin):
    """A check that no twin passes below 8 examples (it needs both classes, a spread of logits),
    and that the faulty one fails at any size."""
    x, _ = helpers.real_batch("tweet_fasttext", 64)
    if len(x) < 8:
        raise helpers.failure(f"only {len(x)} examples: too few to judge")
    if twin == "faulty":
        raise helpers.failure("the fault")


def test_a_repro_is_not_shrunk_below_the_size_at_which_a_correct_twin_passes():
    assert repro.minimise(_needs_eight, lambda: "faulty", [lambda: "correct"]) == {"batch": 8, "of": 64}
    assert repro.minimise(_needs_eight, lambda: "faulty") == {"batch": 1, "of": 64}  # no control: a failure of any kind


def test_a_check_no_size_below_full_can_show_is_not_minimised():
    assert repro.minimise(_needs_eight, lambda: "faulty", [lambda: "faulty"]) == {}


def test_minimising_leaves_the_callers_cap_as_it_was(monkeypatch):
    monkeypatch.setenv(helpers.REPRO_BATCH_ENV, "32")
    repro.minimise(_needs_eight, lambda: "faulty", [lambda: "correct"])
    assert os.environ[helpers.REPRO_BATCH_ENV] == "32"
    monkeypatch.delenv(helpers.REPRO_BATCH_ENV)
    repro.minimise(_needs_eight, lambda: "faulty", [lambda: "correct"])
    assert helpers.REPRO_BATCH_ENV not in os.environ
