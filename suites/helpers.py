"""Helpers shared by the suites: ids, parametrization, inputs, assertion messages.

Suites never import torch or tensorflow; they speak to twins through ``impls.adapter.Twin``.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from fixtures import expected as E
from impls.adapter import CandidateError, NoRecipe, to_log_probs

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


@dataclass
class Verdict:
    status: str          # "pass" | "fail" | "skip"
    message: str = ""
    measured: dict = field(default_factory=dict)


def _where(exc) -> str:
    """file:line of the innermost frame of a traceback, to say where a crash happened."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f" (at {Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno})" if tb is not None else ""


def judge(check, twin_factory) -> Verdict:
    """Build the twin and run one check, never raising: a failed assertion or contract breach
    is a failure with its message; any other exception (a crash in the candidate's factory,
    forward or loss) is a failure that names the exception and where it was raised; a missing
    recipe is a skip with the reason."""
    try:
        twin = twin_factory()
        return Verdict("pass", "", dict(check(twin) or {}))
    except (AssertionError, CandidateError) as exc:  # our message, not pytest's re-evaluation
        return Verdict("fail", str(exc).split("\nassert ")[0], dict(getattr(exc, "measured", {})))
    except NoRecipe as exc:
        return Verdict("skip", str(exc))
    except Exception as exc:
        return Verdict("fail", f"{check_name(check)} crashed: {type(exc).__name__}: {exc}{_where(exc)}")


def failure(message: str, **measured) -> AssertionError:
    """An AssertionError that carries what the check measured (recorded even though it failed)."""
    exc = AssertionError(message)
    exc.measured = measured
    return exc


def run_check(check, twin_factory, record=None):
    """Run one check as a pytest test: a failure is ``pytest.fail`` with the check's message, a
    skip ``pytest.skip``. Measurements go to ``record(name, value)`` and are printed."""
    __tracebackhide__ = True
    verdict = judge(check, twin_factory)
    for name, value in verdict.measured.items():
        print(f"measured {name} = {value}")
        if record is not None:
            record(name, value)
    if verdict.status == "skip":
        pytest.skip(verdict.message)
    if verdict.status == "fail":
        pytest.fail(verdict.message, pytrace=False)


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


def reference_loss_of(network: str, outputs: np.ndarray, kind: str, y: np.ndarray) -> float:
    """The reference loss of outputs of any kind, in float64 from the values given: CE or BCE of
    the log-probabilities they stand for (for probabilities, the fp32 values themselves)."""
    lp = to_log_probs(outputs, kind)
    y = np.asarray(y, np.int64).reshape(-1)
    return float(-np.mean(lp[np.arange(len(y)), y]))


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
