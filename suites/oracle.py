"""Float64 oracles of the recipes' optimizers, and the real gradients they are replayed on.

numpy only: this module imports neither torch nor tensorflow (the gradient recording reaches the
torch reference through ``impls.registry`` and the framework-neutral ``Twin``, imported when it
runs). Weights are dicts of canonical weights (``fixtures/expected.CANONICAL_WEIGHTS``);
hyperparameters come from the literal ``fixtures/expected.OPTIMIZER``, never from a framework.

Both recipes keep their learning rate constant over the replay: MNIST's LR x0.7 falls after
epoch 1 (938 steps), far beyond ``OPTIMIZER_REPLAY_STEPS``; tweets' Adam LR is constant.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from twinbench.fixtures import expected as E
from twinbench.impls import networks
from twinbench.suites import refcache


def _f64(weights: dict) -> dict:
    return {k: np.asarray(v, np.float64) for k, v in weights.items()}


def _decayed(grad, theta, weight_decay):
    """torch's (coupled, L2) weight decay: g + wd * theta. The recipes have wd = 0."""
    return grad if weight_decay == 0 else grad + weight_decay * theta


# -- Adadelta ------------------------------------------------------------------------------------
def adadelta_init(weights: dict) -> dict:
    """Zero accumulators of squared gradients (v) and squared updates (u), per tensor."""
    return {k: {"v": np.zeros(np.shape(w)), "u": np.zeros(np.shape(w))} for k, w in weights.items()}


def adadelta_update(theta, grad, slot, hp, t):
    """One Adadelta step on one tensor, in place on ``slot`` (torch ``optim/adadelta.py``,
    ``_single_tensor_adadelta``; keras ``src/optimizers/adadelta.py`` is the same formula):

        v     = rho * v + (1 - rho) * g^2
        delta = sqrt(u + eps) / sqrt(v + eps) * g
        u     = rho * u + (1 - rho) * delta^2
        theta = theta - lr * delta
    """
    g = _decayed(grad, theta, hp["weight_decay"])
    rho, eps = hp["rho"], hp["eps"]
    slot["v"] = rho * slot["v"] + (1 - rho) * g * g
    delta = np.sqrt(slot["u"] + eps) / np.sqrt(slot["v"] + eps) * g
    slot["u"] = rho * slot["u"] + (1 - rho) * delta * delta
    return theta - hp["lr"] * delta


# -- Adam, Keras's epsilon-hat placement -----------------------------------------------------------
def adam_init(weights: dict) -> dict:
    """Zero first (m) and second (v) moment estimates, per tensor."""
    return {k: {"m": np.zeros(np.shape(w)), "v": np.zeros(np.shape(w))} for k, w in weights.items()}


def adam_update(theta, grad, slot, hp, t):
    """One Adam step (t = 1, 2, ...) on one tensor, in place on ``slot``, with epsilon added to
    sqrt(v) before bias correction (keras ``src/optimizers/adam.py``, ``update_step``; Kingma &
    Ba, section 2, "epsilon hat"):

        m     = beta_1 * m + (1 - beta_1) * g
        v     = beta_2 * v + (1 - beta_2) * g^2
        lr_t  = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
        theta = theta - lr_t * m / (sqrt(v) + epsilon_hat)

    torch's ``optim/adam.py`` adds its eps to sqrt(v_hat) instead; the torch reference reaches
    this form with eps_t = epsilon_hat / sqrt(1 - beta_2^t) (``AdamEpsilonHat``)."""
    g = _decayed(grad, theta, hp["weight_decay"])
    b1, b2 = hp["beta_1"], hp["beta_2"]
    slot["m"] = b1 * slot["m"] + (1 - b1) * g
    slot["v"] = b2 * slot["v"] + (1 - b2) * g * g
    lr_t = hp["lr"] * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    return theta - lr_t * slot["m"] / (np.sqrt(slot["v"]) + hp["epsilon_hat"])


# -- SGD with momentum ------------------------------------------------------------------------------
def sgd_init(weights: dict) -> dict:
    """A zero momentum buffer (b), per tensor."""
    return {k: {"b": np.zeros(np.shape(w))} for k, w in weights.items()}


def sgd_update(theta, grad, slot, hp, t):
    """One SGD step on one tensor (torch ``optim/sgd.py``, dampening 0, not Nesterov):

        b     = momentum * b + g
        theta = theta - lr * b

    keras ``src/optimizers/sgd.py`` keeps v = momentum * v - lr * g and adds it: the same
    trajectory while the learning rate is constant (a schedule makes them differ, and the
    trajectory check sees it)."""
    g = _decayed(grad, theta, hp.get("weight_decay", 0.0))
    slot["b"] = hp.get("momentum", 0.0) * slot["b"] + g
    return theta - hp["lr"] * slot["b"]


UPDATES = {"adadelta": (adadelta_init, adadelta_update), "adam": (adam_init, adam_update),
           "sgd": (sgd_init, sgd_update)}


def replay(network: str, start: dict, grads: list):
    """Yield the float64 weights after each step of the network's literal optimizer
    (``networks.get(network).optimizer``), from ``start``, one gradient dict per step."""
    hp = networks.get(network).optimizer
    init, update = UPDATES[hp["kind"]]
    theta = _f64(start)
    state = init(theta)
    for t, g in enumerate(grads, start=1):
        theta = {k: update(theta[k], np.asarray(g[k], np.float64), state[k], hp, t) if k in g else theta[k]
                 for k in theta}  # state without a gradient (a BatchNorm's moving statistics) stays
        yield theta


# -- recorded gradients ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Recording:
    """What every twin of a network replays, computed once per session: the start weights (the
    torch reference's seed-0 init), the gradient of every step, the oracle's displacement
    theta_t - theta_0 after every step, each tensor's scale (the largest cumulative update
    max |theta_t - theta_0| the oracle reaches over the replay) and each element's half ulp."""

    network: str
    start: dict
    grads: tuple
    moved: tuple        # float32 oracle displacements theta_t - theta_0, one dict per step
    scale: dict
    half_ulp: dict      # float32 half ulp of |theta_0| + scale: the largest |theta| of the replay

    def oracle(self, step: int, name: str) -> np.ndarray:
        """The oracle's weight ``name`` after ``step`` (1-based) steps, float64."""
        return self.start[name].astype(np.float64) + self.moved[step - 1][name]


VERIFY_STEPS = 2  # a reused recording's first gradients, recomputed live and compared bit for bit


@functools.lru_cache(maxsize=None)
def recording(network: str) -> Recording:
    """Train the network's primary torch reference (seed 0) for ``E.OPTIMIZER_REPLAY_STEPS``
    steps of its own recipe, on real training batches in the shared ``batch_order``, recording
    the canonical gradient of each step at the weights the recipe has reached (eval mode, so
    dropout is off and the gradients are deterministic), then run the oracle on them. The
    gradients are reference work, kept in the data cache (suites/refcache.py; the entry is
    versioned by this file): on reuse the start weights and the first VERIFY_STEPS gradients are
    recomputed live and must equal the stored ones bit for bit. The oracle (numpy, 0.3-0.6 s) is
    run on them in every session, so what it gives always follows from the gradients. Once per
    session per network."""
    arrays, meta = refcache.get(f"optimizer-gradients-{network}", lambda: _pack(*_record(network)),
                                lambda arrays, meta: _verify(network, *_unpack(arrays, meta)),
                                code=("suites/oracle.py",), network=network)  # never kept for a user's pair
    return _with_oracle(network, *_unpack(arrays, meta))


def _gradients(network: str, steps: int) -> tuple:
    """The torch reference's start weights and its first ``steps`` recorded gradients."""
    from twinbench.impls import registry
    from twinbench.impls.adapter import batch_order

    batch = networks.get(network).train_batch
    x, y = networks.get(network).split("train", E.OPTIMIZER_REPLAY_STEPS * batch)
    order = batch_order(len(x), 0, E.OPTIMIZER_REPLAY_SEED)
    ref = registry.build(registry.reference("torch", network), seed=0)
    start = ref.get_weights()
    grads = []
    for i in range(steps):
        if grads:
            ref.optimizer_step(grads[-1])
        idx = order[i * batch:(i + 1) * batch]
        _, g = ref.loss_and_grads(x[idx], y[idx])
        grads.append({k: np.ascontiguousarray(v, np.float32) for k, v in g.items()})
    return start, grads


def _record(network: str) -> tuple:
    start, grads = _gradients(network, E.OPTIMIZER_REPLAY_STEPS)
    for i in range(1, len(grads)):
        if any(all(np.array_equal(grads[i][k], grads[j][k]) for k in start) for j in range(i)):
            raise RuntimeError(f"{network}: recorded gradient {i + 1} repeats an earlier one")
    return start, grads


def _with_oracle(network: str, start: dict, grads: list) -> Recording:
    # The oracle's trajectory is the same for every twin of the network: kept as float32
    # displacements, whose rounding (6e-8 of themselves) is far below any tolerance, where
    # theta_t itself in float32 would carry the very storage rounding the check allows for.
    start64 = _f64(start)
    moved, scale = [], {k: 0.0 for k in start}
    for theta in replay(network, start, grads):
        step = {k: theta[k] - start64[k] for k in start}
        moved.append({k: v.astype(np.float32) for k, v in step.items()})
        scale = {k: max(scale[k], float(np.abs(step[k]).max(initial=0.0))) for k in start}
    half_ulp = {k: 0.5 * np.spacing((np.abs(start64[k]) + scale[k]).astype(np.float32)) for k in start}
    return Recording(network, start, tuple(grads), tuple(moved), scale, half_ulp)


def _pack(start: dict, grads: list) -> tuple:
    return refcache.flatten({"start": start, **{f"g{i}": g for i, g in enumerate(grads)}}), {"steps": len(grads)}


def _unpack(arrays: dict, meta: dict) -> tuple:
    groups = refcache.grouped(arrays)
    return groups["start"], [groups[f"g{i}"] for i in range(meta["steps"])]


def _verify(network: str, start: dict, grads: list) -> str:
    """'' when the start weights and the first VERIFY_STEPS gradients, recomputed, equal the
    stored ones bit for bit; else what differs."""
    if len(grads) != E.OPTIMIZER_REPLAY_STEPS:
        return f"{len(grads)} gradients stored, the recipe replays {E.OPTIMIZER_REPLAY_STEPS}"
    live_start, live = _gradients(network, VERIFY_STEPS)
    for what, mine, kept in [("the start weights differ", live_start, start)] + [
            (f"gradient {i + 1} differs", g, grads[i]) for i, g in enumerate(live)]:
        bad = refcache.differing(mine, kept)
        if bad:
            return f"{what} in {', '.join(bad)}"
    return ""


@functools.lru_cache(maxsize=None)
def partner_replay(partner: str) -> tuple:
    """A reference partner's canonical weights after each replayed step of ``recording``, from its
    start: the same for every twin compared with it, so computed once per session per partner
    (~115 MB for an MNIST partner's 24 steps) instead of once per twin."""
    from twinbench.impls import registry

    spec = registry.by_id(partner)
    rec = recording(spec.network)
    other = registry.build(spec, seed=1)
    other.set_weights(rec.start)
    after = []
    for grads in rec.grads:
        other.optimizer_step(grads)
        weights = other.get_weights()
        for w in weights.values():
            w.setflags(write=False)  # shared by every twin compared with this partner
        after.append(weights)
    return tuple(after)


def excess_error(rec: Recording, name: str, got: np.ndarray, want: np.ndarray, step: int,
                 rounded_sides: int = 1) -> float:
    """How far ``got`` is from ``want`` beyond what float32 storage alone explains, in units of
    the tensor's scale of cumulative update:

        max over elements of (|got - want| - rounded_sides * step * half_ulp) / scale, floored at 0

    Each optimizer step rounds each fp32 weight once, by at most half an ulp of its magnitude
    (<= |theta_0| + scale over the replay), so after ``step`` steps an fp32 twin can sit
    ``step`` half-ulps from the exact trajectory without any arithmetic error (two fp32 twins:
    twice that). What is left is the optimizer's arithmetic. inf for a non-finite weight, or
    for any difference in a tensor the oracle never moves."""
    diff = np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64))
    excess = diff - (rounded_sides * step) * rec.half_ulp[name]
    worst = float(excess.max(initial=0.0))
    if not np.isfinite(worst):  # NaN propagates through max
        return float("inf")
    if worst <= 0:
        return 0.0
    return worst / rec.scale[name] if rec.scale[name] > 0 else float("inf")
