"""Diagnosis's measures (suites/diagnosis.py), on numbers whose answer is known. Which cause each
candidate of the corpus gets is held by the detection self-test's literal (test_detection.py)."""

import json

import numpy as np
import pytest

from twinbench.fixtures import tolerances as T
from twinbench.suites import diagnosis, oracle

pytestmark = pytest.mark.selftest


def test_every_probe_has_a_floor_in_fixtures():
    assert set(diagnosis.PROBES) == set(T.DIAGNOSIS_FLOOR), set(diagnosis.PROBES) ^ set(T.DIAGNOSIS_FLOOR)


@pytest.mark.parametrize("name", ["forward", "schedule", "loss", "loss_of_outputs"])
def test_equal_infinities_are_no_difference(name):
    """A probability that underflows to 0 in both twins is a log-probability of -inf in both: the
    same output, not an infinite difference (-inf - -inf is NaN)."""
    if name in ("loss", "loss_of_outputs"):
        a, b = float("inf"), float("inf")
        other = 1.0
    else:
        a = np.array([[-np.inf, -0.5], [-1.0, -2.0]])
        b, other = a.copy(), np.array([[-3.0, -0.5], [-1.0, -2.0]])
    assert diagnosis.distance(name, a, b) == 0.0
    assert diagnosis.distance(name, a, other) == float("inf")


def test_a_nan_is_always_a_difference():
    a = np.array([np.nan, 1.0])
    assert diagnosis.distance("forward", a, a.copy()) == float("inf")


@pytest.mark.parametrize("factor", [1e-3, 0.1, 1.0, 3.0])
def test_a_learning_rate_factor_does_not_magnify_fp32_rounding(factor):
    """The optimizer probe compares a candidate's displacement with c x the recipe's (globally, and
    per tensor for the per-layer learning rates). A candidate at lr x ``factor`` whose weights are
    the exact start + factor x the recipe's update, stored in fp32, is within the floor: its
    displacement carries the rounding of weights, not of the update. Divided by c first, that
    rounding was magnified 1/c-fold (lr x 1e-3: 1000-fold)."""
    rec = oracle.recording("tweet_fasttext")
    want = {k: np.asarray(v, np.float64) for k, v in rec.moved[T.DIAGNOSIS_OPTIMIZER_STEPS - 1].items()}
    start = {k: np.asarray(v, np.float64) for k, v in rec.start.items()}
    got = {k: (start[k] + factor * want[k]).astype(np.float32).astype(np.float64) - start[k] for k in want}
    assert diagnosis.distance("optimizer", got, want) <= T.DIAGNOSIS_FLOOR["optimizer"]
    for k in want:
        c = float(np.vdot(got[k], want[k]) / np.vdot(want[k], want[k]))
        assert diagnosis._scaled_excess(rec, k, got[k], want[k], c) <= T.DIAGNOSIS_FLOOR["optimizer"], (k, c)


def test_a_stored_hypothesis_table_is_rebuilt_with_every_type():
    """What the reference cache keeps of the hypotheses' probes comes back equal, types included
    (a tuple of stochastic signatures is not a list; a float32 gradient is not a float64), with
    an array shared by two hypotheses stored once."""
    grads = {"fc.kernel": np.arange(6, dtype=np.float32).reshape(2, 3), "fc.bias": np.zeros(1, np.float32)}
    full = diagnosis.Probes({"fc.kernel": (2, 3), "fc.bias": (1,)}, {
        "forward": np.array([[-np.inf, -0.1]]), "forward_negated": None, "loss": 0.693, "loss_of_outputs": float("nan"),
        "grads": grads, "optimizer": {k: v.astype(np.float64) for k, v in grads.items()},
        "schedule": np.array([1.0, 0.7]), "stochastic": ((("dropout", "element", 0.25, "conv2"),), ()),
        "declared": {"batch_size": 64}})
    same_grads = diagnosis.Probes(full.shapes, {"grads": dict(grads), "stochastic": ((), ("noise in fc",))})
    table = {"reference": full, "h1": same_grads, "h2": None}
    arrays, meta = diagnosis._pack_table(table)
    back = diagnosis._unpack_table(arrays, json.loads(json.dumps(meta)))  # stored as JSON
    assert list(back) == list(table)
    assert all(diagnosis._same_probes(table[k], back[k]) for k in table)
    assert len(arrays) == 6  # forward, schedule, 2 grads (shared by h1), 2 optimizer tensors
    assert not diagnosis._same_probes(full, diagnosis.Probes(full.shapes, dict(full.values, loss=0.694)))


@pytest.mark.parametrize("scales, noise, cause", [
    ({"conv1.kernel": 0.0, "conv1.bias": 0.0}, 1e-4, "frozen-layer"),
    ({"fc2.kernel": 0.5}, 1e-4, "late-update-scale"),
    ({}, 1e-4, None),                        # every update the reference's: nothing to name
    ({"conv1.kernel": 0.0}, 0.1, None),      # updates of another shape than a constant times the reference's
])
def test_a_late_departure_is_fitted_by_layer_and_magnitude(monkeypatch, scales, noise, cause):
    """The update in the step before the trajectory departs, each tensor a constant times the
    reference's: frozen tensors at 0, scaled ones at their factor, anything else unknown."""
    from twinbench.suites.checks import trajectory

    rng = np.random.default_rng(0)
    want = {k: rng.standard_normal((3, 4)) for k in ("conv1.kernel", "conv1.bias", "fc2.kernel", "fc2.bias")}
    got = {k: scales.get(k, 1.0) * w + noise * np.linalg.norm(w) / np.sqrt(w.size) * rng.standard_normal(w.shape)
           for k, w in want.items()}
    monkeypatch.setattr(trajectory, "departing_update", lambda twin: (151, {k: (got[k], want[k]) for k in want}, True))
    monkeypatch.setattr(diagnosis.registry, "build", lambda spec, seed: None)
    finding = diagnosis._late_update_finding(None, "mnist_cnn")
    assert (finding and finding.cause) == cause, finding
    if cause:
        assert "step 151" in finding.sentence and all(k in finding.sentence for k in scales), finding.sentence


def test_a_missing_gradient_is_a_zero_gradient():
    """Keras's trainable=False layer has no gradient where torch's frozen one reports zeros: the
    same behaviour, no difference; a gradient of another value is one."""
    want = {"a": np.array([0.0, 0.0]), "b": np.array([1.0, 2.0])}
    assert diagnosis.distance("grads", {"b": np.array([1.0, 2.0])}, want) == 0.0
    assert diagnosis.distance("grads", {"b": np.array([1.0, 2.0])}, {"a": np.array([1.0, 0.0]), "b": want["b"]}) == 1.0


def test_a_pairs_batchnorm_gets_the_batchnorm_hypotheses_by_module_type():
    """A pair's torch twin is searched by module type: every BatchNorm gets the BatchNorm faults,
    each at its own module, each with a cause (mnist_bn's torch reference stands for a pair's)."""
    from twinbench.impls.hypotheses import pair_hypotheses

    hyps = {h.id.split(".", 1)[1]: h for h in pair_hypotheses("mnist_bn")}
    for bn in ("bn1", "bn2", "bn3"):
        for op in ("bn-momentum=0.9", "bn-momentum=0.01", "bn-momentum=0.99", "bn-eps=0.001", "bn-affine=False",
                   "bn-center=False", "bn-scale=False", "bn-stats-untracked", "bn-always-training", "bn-frozen"):
            assert f"{op}@{bn}" in hyps, sorted(hyps)
            assert diagnosis.cause_of(hyps[f"{op}@{bn}"].id), op
    model = hyps["bn-momentum=0.9@bn2"].build()["model"]
    assert (model.bn1.momentum, model.bn2.momentum, model.bn3.momentum) == (0.1, 0.9, 0.1)


def test_a_pairs_gru_gets_the_recurrent_hypotheses_by_module_type():
    """A pair's GRU (tweet_gru's torch reference standing for a pair's torch twin) gets the
    recurrent faults at its own module, each with a cause, and the backwards one reads the
    sequence backwards."""
    from twinbench.impls import registry
    from twinbench.impls.hypotheses import pair_hypotheses
    from twinbench.suites.helpers import real_batch

    hyps = {h.id.split(".", 1)[1]: h for h in pair_hypotheses("tweet_gru")}
    gru = next(site.split("@")[1] for site in hyps if site.startswith("go-backwards@"))
    for op in ("go-backwards", "gate-order=z,r,n", "reset-before", "recurrent-bias-removed"):
        assert f"{op}@{gru}" in hyps and diagnosis.cause_of(hyps[f"{op}@{gru}"].id), sorted(hyps)
    backwards = registry.build(diagnosis._spec(hyps[f"go-backwards@{gru}"]), seed=0)
    ref = registry.build(registry.reference("torch", "tweet_gru"), seed=0)
    ref.set_weights(backwards.get_weights())
    x, _ = real_batch("tweet_gru", 8)
    assert np.array_equal(backwards.forward(x), ref.forward(np.ascontiguousarray(x[:, ::-1])))
    assert not np.array_equal(backwards.forward(x), ref.forward(x))
