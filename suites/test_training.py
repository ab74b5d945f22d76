"""training.subject_trajectory: one training run of a subject serves all of its partners, and each
partner sees exactly what a run of its own would have shown."""

import numpy as np
import pytest

from impls import registry
from suites import training

pytestmark = pytest.mark.selftest


@pytest.fixture
def setup(monkeypatch):
    """The tweets torch reference as the subject, and two partners made of its own complete run:
    "same" (identical) and "shifted" (its losses off by 1 from step 3). The session's trajectories
    are set aside: a reference subject whose complete run is already known is not trained again."""
    monkeypatch.setattr(training, "_SUBJECT", {})
    monkeypatch.setattr(training, "_TRAJECTORIES", {})
    spec = registry.reference("torch", "tweet_fasttext")
    real = training._train_trajectory(registry.build(spec, seed=1), False)
    shifted = real.losses.copy()
    shifted[3:] += 1.0
    partners = {"same": real, "shifted": training.Trajectory(shifted, real.weights, True)}
    return spec, real, partners


def _raising_at(twin, step):
    calls, inner = [0], twin.loss_and_grads

    def loss_and_grads(*args, **kwargs):
        calls[0] += 1
        if calls[0] > step:
            raise RuntimeError(f"shape mismatch at step {step}")
        return inner(*args, **kwargs)

    twin.loss_and_grads = loss_and_grads
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
