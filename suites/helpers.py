"""Helpers shared by the suites: ids, parametrization, inputs, assertion messages.

Suites never import torch or tensorflow; they speak to twins through ``impls.adapter.Twin``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from twinbench.fixtures import expected as E
from twinbench.impls import networks
from twinbench.impls.adapter import CandidateError, NoRecipe, to_log_probs
from twinbench.impls.networks import NoLiterals
from twinbench.suites.status import CheckCrashed, NoLiteralsSkip, NoRecipeSkip, Status


def at_once(*calls) -> list:
    """Call each zero-argument callable in a thread of its own and return their results in order
    (the first exception is raised). For tests that start independent subprocesses (a pytest run,
    a probe): each child spends seconds importing torch and TensorFlow on one core, so two at a
    time use both cores where one after the other would leave one idle."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return [future.result() for future in [pool.submit(call) for call in calls]]


def parametrize(cases) -> list:
    """(subject, check) pairs as pytest.params with the one id builder (``catalogue.make_id``)."""
    from twinbench.suites.catalogue import make_id

    return [pytest.param(s, c, id=make_id(s, c)) for s, c in cases]


@dataclass
class CheckResult:
    """What one check did to one twin (suites/status.py's vocabulary)."""

    status: Status
    message: str = ""
    measured: dict = field(default_factory=dict)


def _where(exc) -> str:
    """file:line of the innermost frame of a traceback, to say where a crash happened."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f" (at {Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno})" if tb is not None else ""


def run_one(check, twin_factory) -> CheckResult:
    """Build the twin and run one check, never raising.

    - a failed assertion, or anything the candidate did that the contract forbids (its factory,
      forward, loss or optimizer raised: ``CandidateError``), is ``FAIL`` with the message;
    - a recipe check on a model without a recipe, or on a twin of a network whose spec states
      none (a user's pair, --network), is ``NO_RECIPE``;
    - any other exception is a crash of the check itself: ``ERROR``, never counted as a kill."""
    try:
        twin = twin_factory()
        _require_a_recipe(check, getattr(twin, "net", None))
        return CheckResult(Status.PASS, "", dict(check(twin) or {}))
    except (AssertionError, CandidateError) as exc:  # our message, not pytest's re-evaluation
        return CheckResult(Status.FAIL, str(exc).split("\nassert ")[0], dict(getattr(exc, "measured", {})))
    except NoRecipe as exc:
        return CheckResult(Status.NO_RECIPE, f"no recipe: {exc}")
    except NoLiterals as exc:
        return CheckResult(Status.NO_LITERALS, f"no literals: {exc}")
    except Exception as exc:
        from twinbench.suites.catalogue import name_of  # the catalogue imports the checks, which import this module

        return CheckResult(Status.ERROR, f"twinbench error (a crash of the check, not a verdict on the twin): "
                                         f"{name_of(check)} raised {type(exc).__name__}: {exc}{_where(exc)}")


def _require_a_recipe(check, spec) -> None:
    from twinbench.suites.catalogue import RECIPE_FAMILIES, family  # the catalogue imports the checks, which import this module

    if spec is not None and not spec.has_recipe and family(check) in RECIPE_FAMILIES:
        raise NoRecipe(f"the spec of {spec.name} states no recipe (train_batch, budget_epochs and the rest): the "
                       f"{family(check)} checks need one")


def failure(message: str, **measured) -> AssertionError:
    """An AssertionError that carries what the check measured (recorded even though it failed)."""
    exc = AssertionError(message)
    exc.measured = measured
    return exc


def run_check(check, twin_factory, record=None):
    """Run one check as a pytest test: a failure is ``pytest.fail`` with the check's message, a
    crash ``CheckCrashed``, a model-only skip ``NoRecipeSkip``, so that the report's status is
    decided by the exception's type (suites/status.py). Measurements go to ``record(name,
    value)`` and are printed."""
    __tracebackhide__ = True
    result = run_one(check, twin_factory)
    for name, value in result.measured.items():
        print(f"measured {name} = {value}")
        if record is not None:
            record(name, value)
    if result.status is Status.NO_RECIPE:
        raise NoRecipeSkip(result.message)
    if result.status is Status.NO_LITERALS:
        raise NoLiteralsSkip(result.message)
    if result.status is Status.ERROR:
        raise CheckCrashed(result.message, pytrace=False)
    if result.status is Status.FAIL:
        pytest.fail(result.message, pytrace=False)


def batch_shape(template: tuple, batch: int) -> tuple:
    return tuple(batch if d == E.B else d for d in template)


def sample_input(network: str, batch: int, seed: int = 0) -> np.ndarray:
    """Deterministic synthetic input in the canonical layout (shape checks do not need real data)."""
    return networks.get(network).input.sample(batch, seed)


def fmt(n: int) -> str:
    return f"{n:,}"


REPRO_BATCH_ENV = "TWINBENCH_REPRO_BATCH"  # a repro script's cap on real batches (suites/repro.py)


def real_batch(network: str, n: int):
    """n test examples spread evenly over the test split (every len/n-th), canonical layout:
    normalised MNIST images or tweet ids. Spread, not the first n: the tweets' test split starts
    with over a thousand negatives, and a batch of one class cannot see a fault that weighs the
    other (class weights, pos_weight). A minimised repro caps n with TWINBENCH_REPRO_BATCH."""
    from twinbench.suites import runstate

    runstate.current().batches_asked.append(n)  # for repro minimisation (suites/repro.py)
    cap = os.environ.get(REPRO_BATCH_ENV)
    if cap:
        n = min(n, int(cap))
    x, y = networks.get(network).split("test")
    idx = (np.arange(n) * len(x)) // n
    return x[idx], y[idx]


def reference_loss_of(network: str, outputs: np.ndarray, kind: str, y: np.ndarray) -> float:
    """The reference loss of outputs of any kind, in float64 from the values given: CE or BCE of
    the log-probabilities they stand for (for probabilities, the fp32 values themselves)."""
    lp = to_log_probs(outputs, kind)
    y = np.asarray(y, np.int64).reshape(-1)
    return float(-np.mean(lp[np.arange(len(y)), y]))


def reference_loss(network: str, logits: np.ndarray, y: np.ndarray) -> float:
    """The reference losses, written out in float64: CE from logits (a class target), BCE from
    logits (a binary one)."""
    z = np.asarray(logits, np.float64)
    if networks.get(network).target.kind == "classes":
        m = z.max(axis=1, keepdims=True)
        lse = (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]
        return float(np.mean(lse - z[np.arange(len(y)), np.asarray(y, np.int64)]))
    z = z.reshape(-1)
    y = np.asarray(y, np.float64).reshape(-1)
    return float(np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))))


def gradient_errors(got: dict, want: dict, network: str, rtol: float) -> tuple[float, list]:
    """Every canonical gradient against the reference's, relative to the tensor's own scale (max
    |g - g_ref| / max |g_ref|; the absolute difference where the reference is all zero):
    (the worst relative error, one message per tensor beyond ``rtol``). A gradient ``got`` lacks
    is zero: a frozen layer's (Keras's trainable=False has none; torch reports zeros)."""
    worst, problems = 0.0, []
    for name in networks.get(network).stepped_weights:
        b = np.asarray(want[name], np.float64)
        a = np.asarray(got[name], np.float64) if name in got else np.zeros_like(b)
        scale = float(np.abs(b).max())
        diff = np.abs(a - b)
        rel = float(diff.max()) / scale if scale > 0 else float(diff.max())
        worst = max(worst, rel)
        if not rel <= rtol:
            i = tuple(int(j) for j in np.unravel_index(int(diff.argmax()), diff.shape))
            problems.append(f"{name}: max |diff| {diff.max():.3g} at {i} (got {a[i]:.4g}, want {b[i]:.4g}) is "
                            f"{rel:.3g} of the tensor's largest gradient {scale:.3g}")
    return worst, problems


def margin_of(got, want, atol, rtol) -> float:
    """The check's margin: max |got - want| / (atol + rtol*|want|) (below 1 passes; inf for NaN)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if not got.size:
        return 0.0
    with np.errstate(invalid="ignore"):
        ratio = np.abs(got - want) / (atol + rtol * np.abs(want))
    return float("inf") if np.isnan(ratio).any() else float(ratio.max())


def max_violation(got, want, atol, rtol):
    """(max |got - want|, index of the worst element, whether all are within atol + rtol*|want|)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    diff = np.abs(got - want)
    excess = diff - (atol + rtol * np.abs(want))
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(excess)), diff.shape)) if diff.size else ()
    return float(diff.max(initial=0.0)), worst, bool((excess <= 0).all())
