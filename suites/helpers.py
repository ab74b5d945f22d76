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


def run_check(check, twin_factory):
    """Build the twin and run the check. A candidate's crash or contract breach is a failed
    check (AssertionError with the message), a missing recipe a skip with the reason."""
    __tracebackhide__ = True
    failure = None
    try:
        twin = twin_factory()
        check(twin)
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
