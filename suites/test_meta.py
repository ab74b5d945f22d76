"""Tests of the suite's own helpers (array-api-tests' meta_tests style)."""

import numpy as np
import pytest

from impls.adapter import from_logits, to_log_probs
from suites.helpers import max_violation, reference_loss
from suites.test_convergence import _meets_gate, summarise

pytestmark = pytest.mark.selftest


def test_summarise_drops_best_and_worst_from_five():
    s = summarise([0.990, 0.991, 0.992, 0.993, 0.999])
    assert s["dropped_best_and_worst"] and s["runs"] == 5
    assert s["mean"] == pytest.approx(0.992) and (s["min"], s["max"]) == (0.990, 0.999)


def test_summarise_keeps_all_below_five():
    assert summarise([0.98, 0.99, 1.0])["mean"] == pytest.approx(0.99)


def test_gate_is_counted_exactly():
    assert _meets_gate(9900, 10000, "mnist_cnn") and not _meets_gate(9899, 10000, "mnist_cnn")
    assert _meets_gate(3933, 4627, "tweet_fasttext") and not _meets_gate(3932, 4627, "tweet_fasttext")


def test_reference_losses_match_closed_forms():
    z = np.array([[0.0, 0.0]])
    assert reference_loss("mnist_cnn", z, np.array([1])) == pytest.approx(np.log(2))
    assert reference_loss("tweet_fasttext", np.array([[0.0]]), np.array([1.0])) == pytest.approx(np.log(2))
    assert reference_loss("tweet_fasttext", np.array([[50.0]]), np.array([0.0])) == pytest.approx(50.0)


def test_output_kinds_round_trip():
    z = np.array([[1.0, -2.0, 0.5]])
    for kind in ("logits", "log_probs", "probs"):
        np.testing.assert_allclose(to_log_probs(from_logits(z, kind), kind), to_log_probs(z, "logits"), atol=1e-12)
    b = np.array([[3.0], [-1.0]])
    for kind in ("logits", "log_probs", "probs"):
        np.testing.assert_allclose(to_log_probs(from_logits(b, kind), kind), to_log_probs(b, "logits"), atol=1e-12)


def test_max_violation_reports_the_worst_element():
    diff, where, ok = max_violation(np.array([1.0, 2.0, 3.5]), np.array([1.0, 2.0, 3.0]), 0.1, 0.0)
    assert (diff, where, ok) == (0.5, (2,), False)


def test_matrix_known_bad_and_corpus_declare_the_same_checks():
    """The seeds' defects run in the matrix (fixtures/xfails.py) and in the detection corpus
    (CAUGHT_BY in their files): both must name the same checks."""
    import importlib

    from fixtures import xfails
    from impls import registry

    for spec in registry.KNOWN_BAD:
        declared = set(importlib.import_module(spec.factory.split(":")[0]).CAUGHT_BY)
        registered = {p[len(spec.id) + 1:] for p in xfails.EXPECTED_FAILURES if p.startswith(spec.id + "-")}
        assert declared == registered, (f"{spec.id}: CAUGHT_BY only {sorted(declared - registered)}, "
                                        f"xfails only {sorted(registered - declared)}")


def test_detection_corpus_is_big_enough():
    from impls import registry

    entries = registry.corpus()
    faulty = [e for e in entries if e.faulty]
    correct = [e for e in entries if not e.faulty]
    assert len(faulty) >= 20 and len(correct) >= 6, (len(faulty), len(correct))
    for network in ("mnist_cnn", "tweet_fasttext"):
        for framework in ("torch", "keras"):
            assert any(e.spec.network == network and e.spec.framework == framework for e in faulty), (network, framework)
