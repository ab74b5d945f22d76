"""Optimizer dynamics: the recipe's optimizer followed step by step on changing real gradients.

``check_optimizer_step_parity`` replays one gradient a few times against the partner only. That
misses whatever shows only when gradients change (Adam's beta1: with a constant gradient the
bias-corrected first moment is that gradient for any beta1; AMSGrad: with a constant gradient v
never falls), and a hyperparameter slip made in both references. Here each twin replays
``E.OPTIMIZER_REPLAY_STEPS`` distinct gradients recorded from real training batches
(``suites/oracle.py``), and after every step its weights are compared with a float64 oracle of
the literal recipe (the spec's ``optimizer``) and with the partner reference fed the same gradients.

Errors are per tensor, relative to the tensor's scale of cumulative update over the replay, and
counted beyond the half ulp per step that fp32 storage of the weights alone accounts for
(``oracle.excess_error``), so that ``T.OPT_DYNAMICS_RTOL`` means the same for every layer.
"""

import time


from twinbench.fixtures import tolerances as T
from twinbench.impls import networks
from twinbench.impls.adapter import NoRecipe
from twinbench.suites import oracle as O
from twinbench.suites import runstate
from twinbench.suites.helpers import failure


def _describe(network: str) -> str:
    hp = networks.get(network).optimizer
    return ", ".join(f"{k} {v}" for k, v in hp.items())


def subject_replay(twin, rec) -> dict:
    """The subject's replay of ``rec``'s gradients from its start weights, and its error against
    the oracle per (step, tensor): the same for every partner, so computed once per subject (the
    checks of one subject run partner after partner; only the latest subject is kept, its 24
    snapshots ~115 MB for the CNN). A replay that raises is not kept: each partner's check runs
    it and raises, as before (a kept exception's frames would keep the twin alive, ~100 MB for a
    Keras CNN; a raising replay stops early, so running it again costs little). ``seconds``: the
    replay's, once per subject (each partner's check reports the same figure)."""
    key = (twin.name, repr(twin.spec), twin.network, id(rec))
    latest = runstate.current().replay  # key, weights after each step, oracle errors, seconds
    if latest.get("key") != key:
        latest.clear()
        started = time.perf_counter()
        after, oracle_err = [], {}
        twin.set_weights(rec.start)
        for step, grads in enumerate(rec.grads, start=1):
            twin.optimizer_step(grads)
            after.append(mine := twin.get_weights())
            for name in twin.net.canonical_weights:
                oracle_err[step, name] = O.excess_error(rec, name, mine[name], rec.oracle(step, name), step)
        latest.update(key=key, after=after, oracle=oracle_err, seconds=round(time.perf_counter() - started, 2))
    return dict(latest)


def check_optimizer_dynamics(twin, partner):
    """From the torch reference's start weights, replay the recorded real gradients one per step;
    after every step each weight tensor must match the float64 oracle and the partner."""
    if not twin.has_recipe:  # before recording anything: a model-only twin has no optimizer to follow
        raise NoRecipe(f"{twin.name} carries no optimizer (model-only)")
    rec = O.recording(twin.network)
    partner_after = O.partner_replay(partner)  # the partner fed the same gradients, once per session
    replay = subject_replay(twin, rec)  # the twin's own replay, once for all its partners
    names = list(twin.net.canonical_weights)
    steps, tol = len(rec.grads), T.OPT_DYNAMICS_RTOL
    worst = {"oracle": (0.0, 0, ""), "partner": (0.0, 0, "")}   # (error, step, tensor)
    first_bad = None
    for step, mine in enumerate(replay["after"], start=1):
        theirs = partner_after[step - 1]
        for name in names:
            for label, err in (("oracle", replay["oracle"][step, name]),
                               ("partner", O.excess_error(rec, name, mine[name], theirs[name], step, rounded_sides=2))):
                if err > worst[label][0]:
                    worst[label] = (err, step, name)
                if err > tol and first_bad is None:
                    first_bad = (step, name, err, label)
    measured = {"opt_dynamics_vs_oracle": worst["oracle"][0], "opt_dynamics_vs_partner": worst["partner"][0],
                "margin": max(worst["oracle"][0], worst["partner"][0]) / tol,
                "opt_dynamics_seconds": replay["seconds"]}
    if first_bad is not None:
        step, name, err, label = first_bad
        what = (f"the float64 oracle of the literal recipe ({_describe(twin.network)})" if label == "oracle"
                else f"the partner {partner} fed the same gradients")
        tail = "; ".join(f"worst vs {k}: {e:.3g} at step {s} ({n})" for k, (e, s, n) in worst.items() if s)
        raise failure(f"{twin.name}: after step {step} of {steps} replayed real gradients, {name} differs from "
                      f"{what} by {err:.3g} of its largest cumulative update ({rec.scale[name]:.3g}), beyond fp32 "
                      f"storage rounding; tolerance {tol:g}. {tail}", **measured)
    return measured


def check_recipe_declarations(twin):
    """What a recipe declares beyond its loss and optimizer (a torch dict's ``batch_size`` and
    ``epochs``) must be the literal recipe: the suite trains at the spec's ``train_batch``
    for its ``budget_epochs``, so a different declared value would otherwise be silently ignored."""
    want = {"batch_size": twin.net.train_batch, "epochs": twin.net.budget_epochs}
    wrong = [f"{key} {twin.declared[key]!r} (the recipe's is {value})" for key, value in want.items()
             if key in twin.declared and twin.declared[key] != value]
    assert not wrong, (f"{twin.name} declares " + " and ".join(wrong) + ": the suite trains every twin with the "
                       "recipe's values, so this one would not be trained as its author wrote it; declare the recipe's "
                       "values, or drop the keys")
    return {"declared": dict(twin.declared)}
