"""Helpers shared by the suites: ids, parametrization, inputs, assertion messages.

Suites never import torch or tensorflow; they speak to twins through ``impls.adapter.Twin``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pytest

from fixtures import expected as E
from impls.adapter import CandidateError, NoRecipe

# Where checks write side products (summaries, plots). `make conform` and `make test` use reports/.
REPORTS = Path(os.environ.get("TWINBENCH_REPORTS", "reports"))


def check_name(check) -> str:
    """``check_layer_shapes`` or, for a partial, ``check_layer_shapes(batch=7)``."""
    if isinstance(check, functools.partial):
        args = ",".join([repr(a) for a in check.args] + [f"{k}={v!r}" for k, v in check.keywords.items()])
        return f"{check.func.__name__}({args})"
    return check.__name__


def make_id(subject, check) -> str:
    """The one function that builds test ids: ``torch-mnist_cnn-sequential-check_param_count_total``."""
    return f"{getattr(subject, 'id', subject)}-{check_name(check)}"


def with_checks(subjects, checks) -> list:
    """Every (subject, check) pair as a pytest.param with its id."""
    return [pytest.param(s, c, id=make_id(s, c)) for s in subjects for c in checks]


def parametrize_with_checks(subjects, checks):
    """(subject, check) pairs as one parametrization, sklearn's parametrize_with_checks style."""
    return pytest.mark.parametrize(("subject", "check"), with_checks(subjects, checks))


def run_check(check, twin_factory, record=None):
    """Build the twin and run the check. A candidate's crash or contract breach is a failed
    check (AssertionError with the message), a missing recipe a skip with the reason. A check
    may return a dict of measurements; they go to ``record(name, value)`` and are printed."""
    __tracebackhide__ = True
    failure = None
    try:
        twin = twin_factory()
        measured = check(twin)
        for name, value in (measured or {}).items():
            print(f"measured {name} = {value}")
            if record is not None:
                record(name, value)
    except (AssertionError, CandidateError) as exc:
        failure = str(exc).split("\nassert ")[0]  # our message, without pytest's re-evaluation
    except NoRecipe as exc:
        pytest.skip(str(exc))
    if failure is not None:
        pytest.fail(failure, pytrace=False)


def batch_shape(template: tuple, batch: int) -> tuple:
    return tuple(batch if d == E.B else d for d in template)


def sample_input(network: str, batch: int, seed: int = 0) -> np.ndarray:
    """Deterministic synthetic input in the canonical layout (shape checks do not need real data)."""
    rng = np.random.RandomState(seed)
    if network == "mnist_cnn":
        return rng.standard_normal((batch, 28, 28, 1)).astype(np.float32)
    return rng.randint(0, E.TWEETS_VOCAB_SIZE, size=(batch, E.TWEETS_SEQ_LEN)).astype(np.int64)


def fmt(n: int) -> str:
    return f"{n:,}"


def real_batch(network: str, n: int):
    """The first n test examples, canonical layout: normalised MNIST images or tweet ids."""
    from fixtures import data as D

    if network == "mnist_cnn":
        x, y = D.mnist_idx_arrays("test")
        return D.normalise(x[:n]), y[:n].astype(np.int64)
    t = D.tweets()
    return t["x_test"][:n], t["y_test"][:n]


def reference_loss(network: str, logits: np.ndarray, y: np.ndarray) -> float:
    """The reference losses, written out in float64: CE from logits (MNIST), BCE from logits (tweets)."""
    z = np.asarray(logits, np.float64)
    if network == "mnist_cnn":
        m = z.max(axis=1, keepdims=True)
        lse = (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]
        return float(np.mean(lse - z[np.arange(len(y)), np.asarray(y, np.int64)]))
    z = z.reshape(-1)
    y = np.asarray(y, np.float64).reshape(-1)
    return float(np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))))


def max_violation(got, want, atol, rtol):
    """(max |got - want|, index of the worst element, whether all are within atol + rtol*|want|)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    diff = np.abs(got - want)
    excess = diff - (atol + rtol * np.abs(want))
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(excess)), diff.shape)) if diff.size else ()
    return float(diff.max(initial=0.0)), worst, bool((excess <= 0).all())
