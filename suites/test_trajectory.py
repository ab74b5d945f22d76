"""Trajectory parity: train both twins 200 steps from the same weights, with the same batch
order and dropout off; loss curves and final weights must agree (fixtures/tolerances.py says
how the tolerances follow from the measured fp32 drift). The curves are plotted to
reports/trajectories/.

Runs for every twin: each build style, the known-bad twins and --impl candidates. The partner
is trained first, in full, once per session and its curve reused by every pair it is in; the
twin's run stops at the first step whose loss is already out of tolerance (a faulty twin costs
one or two steps, not 200). 200 CNN steps cost ~13 s (torch) and ~11 s (keras) on two cores.
"""

import functools

import numpy as np
import pytest

from fixtures import data as D
from fixtures import expected as E
from fixtures import tolerances as T
from impls import registry
from suites.helpers import REPORTS, run_check
from suites.test_equivalence import partners

pytestmark = pytest.mark.trajectory

BATCH = {"mnist_cnn": 64, "tweet_fasttext": 32}
_RUNS = {}  # impl id -> (losses, final canonical weights, complete); each twin is trained once per session


@functools.lru_cache(maxsize=None)
def _train_data(network):
    n = T.TRAJECTORY_STEPS * BATCH[network]
    if network == "mnist_cnn":
        x, y = D.mnist_idx_arrays("train")
        return D.normalise(x[:n]), y[:n]
    t = D.tweets()
    return t["x_train"][:n], t["y_train"][:n]


@functools.lru_cache(maxsize=None)
def _start_weights(network):
    """The shared start: the torch reference's weights for seed 0, in canonical layout."""
    return registry.build(registry.reference("torch", network), seed=0).get_weights()


def _tolerance(network, steps):
    """Loss tolerance per step: exact for the first steps, the fp32-drift envelope after."""
    exact = T.TRAJECTORY_EXACT_STEPS[network]
    return np.where(np.arange(steps) < exact, T.TRAJECTORY_LOSS_ATOL_EXACT, T.TRAJECTORY_LOSS_ATOL_DRIFT)


def _trajectory(twin, against=None):
    """Train ``twin`` from the shared start. With ``against`` (a partner's full loss curve), stop
    at the first step out of tolerance; such a cut run is not cached (another partner retrains)."""
    run = _RUNS.get(twin.name)
    if run is not None and (run[2] or against is None):
        return run
    twin.set_weights(_start_weights(twin.network))
    x, y = _train_data(twin.network)
    stop = None
    if against is not None:
        tol = _tolerance(twin.network, len(against))
        stop = lambda i, loss: not abs(loss - against[i]) <= tol[i]  # noqa: E731  (NaN stops too)
    losses = twin.train_steps(x, y, BATCH[twin.network], T.TRAJECTORY_STEPS, T.TRAJECTORY_SEED, stop=stop)
    complete = len(losses) == T.TRAJECTORY_STEPS
    run = (np.asarray(losses), twin.get_weights() if complete else None, complete)
    if complete:
        _RUNS[twin.name] = run
    return run


def _plot(name, partner, a, b):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(a, label=name)
    ax.plot(b, label=partner, linestyle="--")
    ax.set(xlabel="optimizer step", ylabel="training loss (dropout off)", yscale="log",
           title=f"trajectory: {name} vs {partner}")
    ax.legend()
    out = REPORTS / "trajectories" / f"{name}-vs-{partner}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".partial.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(out)


def check_trajectory_parity(twin, partner):
    other = registry.build(registry.by_id(partner), seed=1)
    lb, wb, _ = _trajectory(other)
    la, wa, complete = _trajectory(twin, against=lb)
    _plot(twin.name, partner, la, lb)
    exact = T.TRAJECTORY_EXACT_STEPS[twin.network]
    diff = np.abs(la - lb[:len(la)])
    tol = _tolerance(twin.network, len(diff))
    bad = np.flatnonzero(~(diff <= tol))
    assert not len(bad), (f"{twin.name} vs {partner}: training loss differs first at step {bad[0]}: "
                          f"{la[bad[0]]:.7g} vs {lb[bad[0]]:.7g} (|diff| {diff[bad[0]]:.3g}, tolerance "
                          f"{tol[bad[0]]:g}: exact for the first {exact} steps, fp32-drift envelope after)"
                          + ("" if complete else "; training stopped there"))
    wtol = T.TRAJECTORY_WEIGHT_ATOL[twin.network]
    worst = {k: float(np.abs(wa[k] - wb[k]).max()) for k in E.CANONICAL_WEIGHTS[twin.network]}
    off = {k: v for k, v in worst.items() if not v <= wtol}
    assert not off, (f"{twin.name} vs {partner}: final weights after {T.TRAJECTORY_STEPS} steps differ beyond "
                     f"{wtol}: " + ", ".join(f"{k} max |diff| {v:.3g}" for k, v in off.items()))
    return {"trajectory_loss_max_abs_diff": float(diff.max()), "trajectory_weight_max_abs_diff": max(worst.values())}


def checks_for(spec):
    return [functools.partial(check_trajectory_parity, partner=p.id) for p in partners(spec)]


def test_trajectory(subject, check, make_twin, record_property):
    run_check(check, make_twin, record_property)
