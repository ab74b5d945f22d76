"""Optimizer dynamics: the recipe's optimizer followed step by step on changing real gradients,
against a float64 oracle and the partner; and the recipe's declarations.

The checks, their tolerances and sizes: ``suites/catalogue.py`` (``pytest --list-checks``); this
module only runs the catalogue's ``optimizer`` group on every selected twin.
"""

import gc
import weakref

import numpy as np
import pytest

from twinbench.fixtures import expected as E
from twinbench.impls import networks
from twinbench.suites import oracle as O
from twinbench.suites.checks.optimizer import subject_replay
from twinbench.suites.helpers import run_check

pytestmark = pytest.mark.equivalence
GROUP = "optimizer"  # the plugin (suites/plugin/collection.py) parametrizes (subject, check) over catalogue.checks_for(subject, GROUP)


def test_optimizer(subject, check, make_twin, record_property):
    run_check(check, make_twin, record_property)


# -- the replay cache of suites/checks/optimizer.py --------------------------------------------


class _CountingTwin:
    """A stand-in subject for the replay cache: plain SGD (lr 1) on small arrays, counting its steps."""

    def __init__(self, name, fail_at=None):
        self.name, self.spec, self.network, self.steps, self.fail_at = name, ("spec", name), "tweet_fasttext", 0, fail_at
        self.net = networks.get(self.network)

    def set_weights(self, weights):
        self.w = {k: v.copy() for k, v in weights.items()}

    def optimizer_step(self, grads):
        self.steps += 1
        if self.steps == self.fail_at:
            raise RuntimeError(f"{self.name} broke at step {self.steps}")
        self.w = {k: v - grads[k] for k, v in self.w.items()}

    def get_weights(self):
        return {k: v.copy() for k, v in self.w.items()}


def _tiny_recording():
    names = E.CANONICAL_WEIGHTS["tweet_fasttext"]
    start = {n: np.zeros(2, np.float32) for n in names}
    grads = tuple({n: np.full(2, -0.5, np.float32) for n in names} for _ in range(3))
    moved = tuple({n: np.full(2, 0.5 * s, np.float64) for n in names} for s in (1, 2, 3))
    return O.Recording("tweet_fasttext", start, grads, moved, {n: 1.5 for n in names},
                       {n: np.float64(1e-8) for n in names})


def test_a_subjects_replay_is_run_once_for_all_its_partners_and_a_raising_one_is_not_kept():
    rec = _tiny_recording()
    twin = _CountingTwin("counting")
    first = subject_replay(twin, rec)
    assert twin.steps == 3 and len(first["after"]) == 3 and max(first["oracle"].values()) == 0.0
    again = subject_replay(_CountingTwin("counting"), rec)  # a second partner's check: a fresh twin, not replayed
    assert again["after"] is first["after"] and twin.steps == 3
    other = _CountingTwin("other")
    assert subject_replay(other, rec)["after"] is not first["after"] and other.steps == 3
    twins = []
    for _ in range(2):  # a replay that raises raises for every partner, each from its own run
        broken = _CountingTwin("broken", fail_at=2)
        twins.append(weakref.ref(broken))
        with pytest.raises(RuntimeError, match="broke at step 2"):
            subject_replay(broken, rec)
        assert broken.steps == 2
    assert subject_replay(_CountingTwin("counting"), rec)["after"] is not first["after"], "a raising replay left a stale one"
    del broken
    gc.collect()
    assert [t() for t in twins] == [None, None], "a raising replay keeps its twin alive"
