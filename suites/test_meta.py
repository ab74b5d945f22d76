"""Tests of the suite's own helpers (array-api-tests' meta_tests style)."""

import numpy as np
import pytest

from twinbench.fixtures import expected as E
from twinbench.impls.adapter import from_logits, to_log_probs
from twinbench.suites.helpers import max_violation, reference_loss
from twinbench.suites.runstate import Cell
from twinbench.suites.status import Status, Verdict
from twinbench.suites.verdict import verdict
from twinbench.suites.training import meets_gate, olympic, summarise

pytestmark = pytest.mark.selftest


def test_summarise_drops_best_and_worst_from_three():
    s = summarise([0.990, 0.991, 0.992, 0.993, 0.999])
    assert s["dropped_best_and_worst"] and s["runs"] == 5
    assert s["mean"] == pytest.approx(0.992) and (s["min"], s["max"]) == (0.990, 0.999)
    assert summarise([0.98, 0.99, 1.0])["mean"] == pytest.approx(0.99)
    assert summarise([0.98, 1.0])["mean"] == pytest.approx(0.99) and not summarise([0.98, 1.0])["dropped_best_and_worst"]


def test_olympic_epochs_to_target_allows_one_miss():
    """MLPerf: a non-converging run is the slowest and is dropped; two misses fail the gate."""
    assert olympic([9, 10, 5, 6, 11])["mean"] == pytest.approx(25 / 3)
    assert olympic([9, None, 5, 6, 11])["mean"] == pytest.approx(26 / 3)
    assert olympic([9, None, 5, None, 11])["mean"] is None
    assert olympic([3])["mean"] == 3 and olympic([None])["mean"] is None


def _cells(**statuses):
    return {k: Cell(Status(v if isinstance(v, str) else v[0]), "" if isinstance(v, str) else v[1])
            for k, v in statuses.items()}


def test_verdict_rule():
    assert verdict(_cells(check_param_count_total="pass"))[0] is Verdict.CONFORMS
    assert verdict(_cells(a="pass", b="fail"))[0] is Verdict.REJECTED
    assert verdict(_cells(a="pass", b="error"))[0] is Verdict.REJECTED
    assert verdict(_cells(a="xfail"), known_bad=True)[0] is Verdict.KNOWN_BAD
    assert verdict(_cells(a="xpass"), known_bad=True)[0] is Verdict.REJECTED
    no_recipe = _cells(check_loss_parity=("no recipe", "model-only"), check_output_shape="pass")
    assert verdict(no_recipe)[0] is Verdict.INCOMPLETE and not Verdict.INCOMPLETE.passed
    assert verdict(_cells(a="pass"), architecture_only=True)[0] is Verdict.CONFORMS_ARCHITECTURE
    word, summary = verdict(_cells(check_output_shape="pass", check_forward_parity_on_gpu=("skip", "no GPU")),
                            deselected={"trajectory"})
    assert word is Verdict.CONFORMS and "skipped here: GPU" in summary and "deselected: trajectory" in summary
    summary = verdict(_cells(check_output_shape="pass"), deselected={"shapes", "trajectory"})[1]
    assert summary.endswith("; deselected: trajectory; partly deselected: shapes"), summary  # -k kept some shapes checks
    assert word == "conforms" and str(Verdict.KNOWN_BAD) == "rejected as expected (known bad)"  # the words users read


def test_gate_is_counted_exactly():
    assert meets_gate(9900, 10000, "mnist_cnn") and not meets_gate(9899, 10000, "mnist_cnn")
    assert meets_gate(3933, 4627, "tweet_fasttext") and not meets_gate(3932, 4627, "tweet_fasttext")


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

    from twinbench.fixtures import xfails
    from twinbench.impls import registry

    for spec in registry.KNOWN_BAD:
        declared = set(importlib.import_module(spec.factory.split(":")[0]).CAUGHT_BY)
        registered = {p[len(spec.id) + 1:] for p in xfails.EXPECTED_FAILURES if p.startswith(spec.id + "-")}
        assert declared == registered, (f"{spec.id}: CAUGHT_BY only {sorted(declared - registered)}, "
                                        f"xfails only {sorted(registered - declared)}")


def test_detection_corpus_is_big_enough():
    from twinbench.impls import registry

    entries = registry.corpus()
    faulty = [e for e in entries if e.faulty]
    correct = [e for e in entries if not e.faulty]
    assert len(faulty) >= 20 and len(correct) >= 6, (len(faulty), len(correct))
    for network in ("mnist_cnn", "tweet_fasttext"):
        for framework in ("torch", "keras"):
            assert any(e.spec.network == network and e.spec.framework == framework for e in faulty), (network, framework)


def test_mutant_corpus_covers_every_operator_family_on_every_subject():
    """impls/mutants.py generates at least 150 mutants with unique ids; every family of operators
    reaches both frameworks of both networks (data handling: the tweets only), and the committed
    sample that make selftest runs has at least 40, drawn from every family."""
    from twinbench.fixtures import detection
    from twinbench.impls import mutants

    every = mutants.all_mutants()
    ids = [m.id for m in every]
    assert len(every) >= 150, len(every)
    assert len(set(ids)) == len(ids), sorted({i for i in ids if ids.count(i) > 1})
    assert all(m.family in mutants.FAMILIES + ("equivalent",) for m in every)
    for framework in ("torch", "keras"):
        for network in ("mnist_cnn", "tweet_fasttext"):
            have = {m.family for m in every if (m.framework, m.network) == (framework, network)}
            want = set(mutants.FAMILIES) - ({"data"} if network == "mnist_cnn" else set())
            assert want <= have, (framework, network, sorted(want - have))
    assert all(m.equivalent for m in every if m.family == "equivalent"), "an equivalent mutant must say why"
    sample = [m for m in every if m.id in detection.MUTANT_SAMPLE]
    assert len(sample) == len(detection.MUTANT_SAMPLE) >= 40
    assert {m.family for m in sample} == set(mutants.FAMILIES) | {"equivalent"}


def test_speed_report_keeps_the_rows_an_earlier_run_timed(tmp_path):
    """A `-m gpu` run after a CPU run in the same folder adds its rows; it replaces only the rows
    it timed again."""
    import json

    from twinbench.suites import speed_report

    def row(device, median):
        return {"network": "mnist_cnn", "figure": "epoch", "device": device, "name": "torch-module", "median_s": median}

    (tmp_path / "speed.json").write_text(json.dumps({"rows": [row("cpu", 57.0), row("gpu", 2.4)]}))
    merged = speed_report._merged_rows([row("gpu", 0.6)], tmp_path / "speed.json")
    assert [(r["device"], r["median_s"]) for r in merged] == [("cpu", 57.0), ("gpu", 0.6)]
    assert merged[0]["measured_at"] == "an earlier run" and merged[1]["measured_at"] != "an earlier run"


def test_a_reports_status_comes_from_what_it_raised_not_its_message():
    """suites/status.py: a crash of a check is an error, a model-only recipe check 'no recipe', a
    strict expected failure that passed an xpass, whatever their messages say."""
    from types import SimpleNamespace

    from twinbench.suites.status import CheckCrashed, NoRecipeSkip, decide

    class Raised:
        def __init__(self, exc):
            self.value = exc

        def errisinstance(self, kind):
            return isinstance(self.value, kind)

    def rep(outcome, when="call", **extra):
        return SimpleNamespace(outcome=outcome, when=when, failed=outcome == "failed", passed=outcome == "passed",
                               skipped=outcome == "skipped", **extra)

    assert decide(rep("failed"), Raised(CheckCrashed("fail: looks like a failure"))) is Status.ERROR
    assert decide(rep("skipped"), Raised(NoRecipeSkip("skipped"))) is Status.NO_RECIPE
    assert decide(rep("failed"), Raised(AssertionError("twinbench error (a crash...)"))) is Status.FAIL
    assert decide(rep("failed"), None) is Status.XPASS
    assert decide(rep("skipped", wasxfail="known"), Raised(AssertionError())) is Status.XFAIL
    assert decide(rep("failed", when="setup"), Raised(RuntimeError())) is Status.ERROR


def test_every_canonical_weight_has_an_initialisation_law():
    from twinbench.suites.checks import initialization

    for network, weights in E.CANONICAL_WEIGHTS.items():
        assert set(E.INIT_LAWS[network]) == set(weights), network
        for name, law in E.INIT_LAWS[network].items():
            initialization.law_cdf(law)  # a kind it knows, or a ValueError naming the law


def test_kolmogorov_smirnov_distance_and_critical_value():
    from twinbench.suites.checks import initialization as I

    # Kolmogorov's limit at level 0.05 is 1.358 / sqrt(n); at 1e-6 it is 2.693 / sqrt(n)
    assert abs(I.ks_critical(10**8, 0.05) * 10**4 - 1.3581) < 1e-3
    assert abs(I.ks_critical(10**8, 1e-6) * 10**4 - 2.6930) < 1e-3
    cdf = I.law_cdf(("uniform", 1.0))
    assert I.ks_distance(np.zeros(5), cdf) == 0.5          # a constant at the centre of a symmetric law
    grid = (np.arange(1000) + 0.5) / 1000 * 2 - 1            # the uniform law's quantiles: distance 1/(2n)
    assert abs(I.ks_distance(grid, cdf) - 0.0005) < 1e-12
    normal = I.law_cdf(("normal", 0.0, 1.0))
    assert abs(normal(np.array([1.959964]))[0] - 0.975) < 2e-7


def test_a_constant_law_is_judged_exactly():
    """A weight every build sets to one value (a BatchNorm's gamma 1): any other value is a fault,
    however close (margin >= 2 for one value of 128 off)."""
    from twinbench.suites.checks import initialization as I

    ones = np.ones(128)
    assert I.law_distance(ones, ("constant", 1.0)) == (0.0, 0.5 / 128)
    d, crit = I.law_distance(np.r_[ones[:-1], 1.0 + 1e-7], ("constant", 1.0))
    assert d / crit >= 2
    assert I.describe_law(("constant", 0.0)) == "the constant 0"


def test_the_initialisation_fit_names_keras_defaults():
    from twinbench.suites.checks import initialization as I

    rng = np.random.default_rng(0)
    glorot = np.sqrt(6 / (9216 + 128))
    assert "glorot_uniform" in I.fitted_law(rng.uniform(-glorot, glorot, 20000), (9216, 128))
    assert I.fitted_law(np.zeros(10), (10,)) == "the constant 0"
    assert I.fitted_law(rng.normal(0, 0.05, 20000), (20000, 50)).startswith("N(")


@pytest.mark.frameworks("keras")
def test_every_option_listed_harmless_is_an_option_of_a_reference():
    """fixtures/options_harmless.json and layer_options_harmless.json name real options, each with
    a reason: a stale or misspelt entry would exempt nothing and hide that."""
    from twinbench.impls import registry
    from twinbench.suites.checks import options

    for framework in ("torch", "keras"):
        optimizer, layer = set(), set()
        for network in E.NETWORKS:
            twin = registry.build(registry.reference(framework, network), seed=1)
            optimizer |= {k for opts, _ in options.optimizer_options(twin) for k in opts}
            if framework == "torch":  # a scheduler adds its own keys to the groups
                optimizer |= {k for groups in twin.group_settings_by_epoch(2)[1] for group in groups for k in group}
            layer |= {k for opts in twin.layer_options().values() for k in opts}
        listed_sets = [(options.HARMLESS[framework], optimizer, "optimizer"),
                       (options.LAYER_HARMLESS[framework], layer, "layer")]
        if framework == "torch":
            listed_sets.append((options.HARMLESS["torch_by_epoch"], optimizer, "optimizer (by epoch)"))
        for listed, known, what in listed_sets:
            assert set(listed) <= known, f"{framework} {what} options listed harmless but unknown: {set(listed) - known}"
            assert all(isinstance(r, str) and len(r) > 5 for r in listed.values()), listed


@pytest.mark.frameworks("torch")
def test_a_setting_a_scheduler_changes_later_is_compared_at_that_epoch():
    """check_optimizer_options steps a torch recipe's scheduler through the budget: a setting it
    changes at a later epoch is named with that epoch; a learning rate that parts from the recipe's
    by an ulp (the decay in closed form) is left to the schedule check, which judges it by value."""
    from twinbench.impls import registry
    from twinbench.suites.checks import options

    def differences(name):
        entry = next(c for c in registry.corpus() if c.spec.id == name)
        return options.optimizer_differences(registry.build(entry.spec))[0]

    assert differences("known_good-torch_mnist_cnn_lambda_schedule") == []
    late, = differences("known_bad-torch_tweet_fasttext_beta1_cooldown")
    assert late.startswith("betas (0.85, 0.999) from epoch 5"), late
    late, = differences("known_bad-torch_mnist_cnn_late_weight_decay")
    assert late.startswith("weight_decay 0.0001 from epoch 7"), late
    assert differences("known_good-torch_mnist_cnn_labelled_groups") == []  # a "name" label, a generator kept


@pytest.mark.frameworks("torch")
def test_a_scheduler_that_adds_a_param_group_is_named_not_crashed():
    from twinbench.impls import registry
    from twinbench.impls.adapter import CandidateError
    from twinbench.suites.checks import options

    spec = registry.ImplSpec("candidate-torch-mnist_cnn-adds", "mnist_cnn", "torch", "adds",
                             "twinbench.suites.plugin_samples.bad_factories:scheduler_adds_a_group", "candidate")
    twin = registry.build(spec)
    assert options.optimizer_differences(twin)[0] == [
        "2 param groups from epoch 3 (the scheduler changed them), 1 when the optimizer was built"]
    with pytest.raises(CandidateError, match="changes the optimizer's param groups: 2 from epoch 3"):
        twin.learning_rates_by_group(938, 14)
    assert options._same([0.9, 0.999], (0.9, 0.999)) and not options._same([0.9, 0.99], (0.9, 0.999))
