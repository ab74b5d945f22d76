"""Training runs. training.subject_trajectory: one training run of a subject serves all of its
partners, and each partner sees exactly what a run of its own would have shown. The torch
adapter's train_steps: on its own gradients, bit for bit the canonical round trip; sparse
gradients refused alike on every path."""

import dataclasses
import textwrap

import numpy as np
import pytest

from twinbench.impls import networks, registry
from twinbench.suites import runstate, training

pytestmark = pytest.mark.selftest


@pytest.fixture
def setup():
    """The tweets torch reference's code as a candidate subject (a reference's own run is the
    stored complete one, never cut), and two partners made of its complete run: "same"
    (identical) and "shifted" (its losses off by 1 from step 3). A run state of its own, as a
    session's: nothing trained elsewhere is reused."""
    ref = registry.reference("torch", "tweet_fasttext")
    spec = registry.ImplSpec("candidate-tweets", ref.network, ref.framework, "c", ref.factory, "candidate")
    run = runstate.RunState([], [])
    runstate.activate(run)
    real = training._train_trajectory(registry.build(spec, seed=1), False)
    shifted = real.losses.copy()
    shifted[3:] += 1.0
    partners = {"same": real, "shifted": training.Trajectory(shifted, real.weights, True)}
    yield spec, real, partners
    runstate.deactivate(run)


def test_a_reference_subject_is_not_trained_again(setup):
    """Every build style of a reference is reference work: its run is its partner run (kept for
    the session, and in the reference cache for MNIST), not a run of the twin at hand (here one
    that would raise at its first step); each partner sees it cut as before."""
    ref = registry.reference("torch", "tweet_fasttext")
    _, real, partners = setup
    twin = _raising_at(registry.build(ref, seed=1), 0)
    assert training.subject_trajectory(twin, False, "same", partners) is training.partner_trajectory(ref.id, False)
    cut = training.subject_trajectory(twin, False, "shifted", partners)
    assert not cut.complete and np.array_equal(cut.losses, real.losses[:4])


def _raising_at(twin, step):
    calls, inner = [0], twin._step_grads

    def step_grads(*args, **kwargs):
        calls[0] += 1
        if calls[0] > step:
            raise RuntimeError(f"shape mismatch at step {step}")
        return inner(*args, **kwargs)

    twin._step_grads = step_grads
    return twin


def test_each_partner_sees_the_run_cut_at_its_own_first_divergent_step(setup):
    spec, real, partners = setup
    twin = registry.build(spec, seed=1)
    same = training.subject_trajectory(twin, False, "same", partners)
    cut = training.subject_trajectory(twin, False, "shifted", partners)
    assert same.complete and np.array_equal(same.losses, real.losses)
    assert not cut.complete and np.array_equal(cut.losses, real.losses[:4]) and max(cut.weights) == 2


def test_a_run_that_raises_raises_only_for_the_partners_it_had_not_diverged_from(setup):
    spec, real, partners = setup
    twin = _raising_at(registry.build(spec, seed=1), 6)
    cut = training.subject_trajectory(twin, False, "shifted", partners)  # diverged at step 3, before the error
    assert np.array_equal(cut.losses, real.losses[:4]) and not cut.complete
    with pytest.raises(RuntimeError, match="shape mismatch at step 6"):
        training.subject_trajectory(twin, False, "same", partners)


STEPS = 6


def _spec(path):
    if path.startswith("impls/known_good/"):
        return registry.parse_impl(f"mnist_cnn={path}:factory")
    return registry.reference("torch", "mnist_cnn")


@pytest.mark.parametrize("dropout", [False, True], ids=["eval mode", "training mode with shared masks"])
@pytest.mark.parametrize("path", ["impls/torch_mnist_cnn.py", "impls/known_good/torch_mnist_cnn_functional_dropout.py"],
                         ids=["the torch reference", "a port with functional dropout"])
def test_torch_steps_on_its_own_gradients_are_the_canonical_round_trip_bit_for_bit(path, dropout, monkeypatch):
    """The torch adapter's train_steps leaves the gradients on the parameters (no canonical round
    trip); the run must be the generic loss_and_grads + optimizer_step one, bit for bit."""
    from twinbench.impls.adapter import Twin
    from twinbench.fixtures import tolerances as T

    def run(generic):
        twin = registry.build(_spec(path), seed=1)
        if generic:
            monkeypatch.setattr(twin, "_step_grads", lambda *a, **k: Twin._step_grads(twin, *a, **k))
            monkeypatch.setattr(twin, "_step_apply", lambda g: Twin._step_apply(twin, g))
        twin.set_weights(training.trajectory_start("mnist_cnn"))
        x, y = networks.get("mnist_cnn").split("train", 64 * STEPS)
        kept = []
        losses = twin.train_steps(x, y, 64, STEPS, T.TRAJECTORY_SEED, after_step=lambda i: kept.append(twin.get_weights()),
                                  dropout_seed=T.TRAJECTORY_DROPOUT_SEED if dropout else None)
        return losses, kept

    (la, wa), (lb, wb) = run(generic=False), run(generic=True)
    assert la == lb, f"losses {la} vs the canonical round trip's {lb}"
    for i, (a, b) in enumerate(zip(wa, wb)):
        assert [n for n in a if not np.array_equal(a[n], b[n])] == [], f"weights after step {i}"


def test_a_sparse_gradient_is_refused_with_the_fix_named(tmp_path):
    """A layer with sparse gradients (nn.Embedding(sparse=True)) cannot be compared in canonical
    layout: every training path refuses it alike, naming the parameter and the fix."""
    from twinbench.impls.adapter import CandidateError

    path = tmp_path / "sparse_tweets.py"
    path.write_text(textwrap.dedent('''
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        class Tweets(nn.Module):
            def __init__(self):
                super().__init__()
                self.emb = nn.Embedding(20000, 50, sparse=True)
                self.head = nn.Linear(50, 1)

            def forward(self, ids):
                return self.head(self.emb(ids).mean(dim=1))

        def factory():
            return {"model": Tweets(), "output": "logits",
                    "loss": lambda z, y: F.binary_cross_entropy_with_logits(z.view(-1), y),
                    "optimizer": lambda params: torch.optim.SGD(params, lr=0.1)}
    '''))
    twin = registry.build(registry.parse_impl(f"tweet_fasttext={path}:factory"), seed=1)
    x, y = networks.get("tweet_fasttext").split("train", 32)
    for step in (lambda: twin.loss_and_grads(x, y), lambda: twin.train_steps(x, y, 32, 1, 0)):
        with pytest.raises(CandidateError, match=r"emb\.weight got a torch\.sparse_coo gradient.*sparse=False"):
            step()


def test_steps_pass_over_the_examples_as_epochs_do():
    """train_steps past the end of ``x`` starts a new pass, reshuffled as the next epoch is
    (batch_order(n, pass, seed)), and each pass ends in the remainder: the trajectory's shorter
    batch and its second pass (training.trajectory_data)."""
    from twinbench.impls.adapter import Twin, batch_order

    seen = []

    class Recorder(Twin):
        framework = "torch"

        def _step_grads(self, x, y, training=False, stream=None):
            seen.append(x.copy())
            return 0.0, None

        def _step_apply(self, grads):
            pass

    Recorder.__abstractmethods__ = frozenset()  # only the loop is exercised
    x = np.arange(2 * 4 + 3)
    Recorder("r", "mnist_cnn", "logits", True).train_steps(x, x, 4, 7, seed=5)
    assert [len(b) for b in seen] == [4, 4, 3, 4, 4, 3, 4]
    assert np.array_equal(np.concatenate(seen[:3]), batch_order(11, 0, 5))
    assert np.array_equal(np.concatenate(seen[3:6]), batch_order(11, 1, 5))


def test_the_trajectory_holds_a_shorter_batch_and_a_second_pass():
    from twinbench.fixtures import expected as E
    from twinbench.fixtures import tolerances as T

    for network in E.NETWORKS:
        x, _ = training.trajectory_data(network)
        per_pass = -(-len(x) // E.TRAIN_BATCH[network])
        assert training.pass_steps(network) == per_pass
        assert len(x) % E.TRAIN_BATCH[network] == E.LAST_BATCH[network]
        assert per_pass < T.TRAJECTORY_STEPS, f"{network}: the trajectory never leaves its first pass"
        assert {per_pass - 1, per_pass} <= training.compared_steps(network)


def test_an_anchored_run_is_set_back_to_the_anchor_after_every_window(monkeypatch):
    """Every run but the anchor's is set to the anchor's weights after each window's last step (the
    anchor keeps its weights there, beyond the compared steps); the anchor's own run, and a free
    run, are never set back."""
    from twinbench.fixtures import tolerances as T

    run = runstate.RunState([], [])
    runstate.activate(run)
    try:
        network = "tweet_fasttext"
        monkeypatch.setitem(networks._SPECS, network, dataclasses.replace(networks.get(network), trajectory_window=3))
        monkeypatch.setattr(T, "TRAJECTORY_STEPS", 30)
        ends = list(range(2, 29, 3))
        assert not set(ends) <= training.compared_steps(network)  # kept for the anchor only
        anchor = training.partner_trajectory(training.anchor_id(network), False)
        assert set(ends) <= set(anchor.weights)

        def spied(twin):
            sets, original = [], twin.set_weights
            monkeypatch.setattr(twin, "set_weights", lambda w: (sets.append(w), original(w)))
            return twin, sets

        keras, sets = spied(registry.build(registry.reference("keras", network), seed=1))
        training._train_trajectory(keras, False)
        assert [id(w) for w in sets[1:]] == [id(anchor.weights[s]) for s in ends]  # sets[0]: the start
        sets.clear()
        training._train_trajectory(keras, False, anchored=False)
        assert len(sets) == 1
        own, sets = spied(registry.build(registry.by_id(training.anchor_id(network)), seed=1))
        training._train_trajectory(own, False)
        assert len(sets) == 1
    finally:
        runstate.deactivate(run)


def test_a_free_reference_run_keeps_every_step_it_is_asked_for():
    """The fit path compares each of its FIT_STEPS steps with reference_free_run's, however many
    they are (the compared steps stop naming every step at TRAJECTORY_WEIGHT_EVERY)."""
    from twinbench.fixtures import tolerances as T

    run = runstate.RunState([], [], refcache_mode="off")
    runstate.activate(run)
    try:
        steps = T.TRAJECTORY_WEIGHT_EVERY + 5
        free = training.reference_free_run("torch", "tweet_fasttext", steps, dropout=False)
        assert set(range(steps)) <= set(free.weights)
    finally:
        runstate.deactivate(run)


def test_a_weight_the_reference_leaves_at_zero_is_compared_in_absolute_terms():
    """The trajectory's weight comparison is relative to each tensor's movement, or to its start
    where the reference did not move it; a tensor the reference leaves at zero (a moving mean that
    has not moved) is compared in absolute terms, not divided by zero."""
    from twinbench.suites.checks import trajectory

    start = {k: np.zeros(s, np.float32) for k, s in networks.get("mnist_bn").canonical_weights.items()}
    same, _ = trajectory._weight_problems("mnist_bn", {1: start}, {1: start}, start)
    moved = dict(start, **{"bn1.moving_mean": np.full_like(start["bn1.moving_mean"], 0.5)})
    problems, worst = trajectory._weight_problems("mnist_bn", {1: moved}, {1: start}, start)
    assert same == [] and problems and "bn1.moving_mean differs by 0.5" in problems[0], problems
