"""Trajectory parity: train both twins TRAJECTORY_STEPS steps from the same weights, with the same
batch order, in training mode with shared masks (every dropout draws the same mask in both). The
steps pass over the trajectory's examples twice (training.trajectory_data): the first pass ends
in a batch of the epoch's last-batch size, the second is reshuffled.

Anchored: after every TRAJECTORY_WINDOW steps (a window) each run's weights are set back to the
anchor's (the torch reference's own run) after that step, while its optimizer, optimizer state
and schedule carry on. fp32's reordering drift then has one window to grow, never the whole run,
so the loss after every step is held to the exact tolerance for all 200 steps, and each layer's
weights, relative to its movement from the start, at the compared steps (training.compared_steps)
(fixtures/tolerances.py). A difference that acts only late (an option that binds after many
steps, a threshold on the step count, the shorter batch) shows in the window where it acts. The
drift of free runs is a measurement (``python -m twinbench.suites.drift``). Curves are plotted to
reports/trajectories/.

Training mode only, because that is how a model is trained: a second run in eval mode (dropout
off) was dropped on 2026-12-06. Over the whole corpus (266 candidates) it rejected nothing the
training-mode run did not also reject against the same partner, for the fastText network (no
random op) it was the same computation twice, and it cost a quarter of an MNIST verdict.

Runs for every twin: each build style, the known-bad twins and --impl candidates. The partner is
trained in full once per session (suites/training.py caches it). The twin is trained once for all
its partners (a candidate has two) and stops at the first step whose loss is out of tolerance
against all of them, so a faulty twin costs a step or two, not 200; each partner's check sees the
run cut at its own first such step.
"""

import numpy as np

from twinbench.fixtures import tolerances as T
from twinbench.impls import networks, registry
from twinbench.suites import curves, runstate, training
from twinbench.suites.runstate import REPORTS
from twinbench.suites.helpers import failure


def _weight_problems(network, a: dict, b: dict, start: dict):
    """(problems, worst margin) over the compared steps both runs reached. Each tensor's difference
    is in units of its movement (of its largest start value where the reference did not move it;
    absolute where that is zero too: a moving mean the reference left at 0)."""
    problems, worst = [], 0.0
    names = networks.get(network).canonical_weights
    allowance = {name: training.state_allowance(network, name) for name in names}  # 0 but for torch's unbiased running_var
    for step in sorted(set(a) & set(b)):
        tol = training.weight_tolerance(network, step)
        for name in names:
            scale = float(np.abs(b[step][name] - start[name]).max()) or float(np.abs(start[name]).max()) or 1.0
            allowed = allowance[name] * np.abs(b[step][name])
            rel = float(np.maximum(np.abs(a[step][name] - b[step][name]) - allowed, 0.0).max()) / scale
            worst = max(worst, rel / tol)
            if not rel <= tol and len(problems) < 4:
                problems.append(f"after step {step}: {name} differs by {rel:.3g} of its movement (tolerance {tol:g})")
    return problems, worst


def check_trajectory_parity(twin, partner):
    mode = "training mode, shared masks"
    ids = [p.id for p in registry.partners(twin.spec)] if twin.spec is not None else [partner]
    partners = {p: training.partner_trajectory(p, True) for p in ids + [partner] * (partner not in ids)}
    a = training.subject_trajectory(twin, True, partner, partners)
    b = partners[partner]
    if runstate.current().plots:  # the detection self-test's hundreds of candidates draw none
        curves.write_trajectory_plot(REPORTS, twin.name, partner, a.losses, b.losses, mode)
    diff = np.abs(a.losses - b.losses[:len(a.losses)])
    tol = training.loss_tolerance(twin.network, len(diff))
    loss_margin = float(np.max(diff / tol)) if len(diff) else 0.0
    bad = np.flatnonzero(~(diff <= tol))
    if len(bad):
        i = bad[0]
        raise failure(f"{twin.name} vs {partner} ({mode}): training loss differs first at step {i}{_where(twin.network, i)}: "
                      f"{a.losses[i]:.7g} vs {b.losses[i]:.7g} (|diff| {diff[i]:.3g}, tolerance {tol[i]:g})"
                      + ("" if a.complete else "; training stopped there"), margin=loss_margin)
    problems, weight_margin = _weight_problems(twin.network, a.weights, b.weights, training.trajectory_start(twin.network))
    margin = max(loss_margin, weight_margin)
    if problems:
        raise failure(f"{twin.name} vs {partner} ({mode}): weights differ: " + "; ".join(problems), margin=margin)
    return {"trajectory_loss_max_abs_diff": float(diff.max()), "margin": margin}


def departing_update(twin, dropout: bool = True):
    """Diagnosis's look at where the twin's anchored trajectory departs: (step, updates, same)
    where ``step`` is the first step whose loss is out of tolerance against the anchor's run and
    ``updates`` maps each canonical weight to (the twin's update, the anchor code's update) in
    the step before it; ``same``: both updates start from the same weights (that step opens a
    window: MNIST every other step), else from weights whose losses agreed until then. None when
    the run never departs, departs at its first step, or departs just after being set back (the
    loss of the anchor's own weights differs: a forward difference, which other probes judge)."""
    from twinbench.impls import registry

    network, w = twin.network, twin.net.trajectory_window
    anchor = training.partner_trajectory(training.anchor_id(network), dropout)
    tol = training.loss_tolerance(network, len(anchor.losses))

    def run(subject, last=None):
        seen: dict = {}

        def stop(i, loss):  # the weights this step's loss is taken at: the update of step i - 1 done
            seen[i] = subject.get_weights()
            seen.pop(i - 2, None)
            if i == last or (last is None and not abs(loss - anchor.losses[i]) <= tol[i]):
                seen["at"] = i
                return True
            return False

        training._train_trajectory(subject, dropout, stop=stop, anchored=True)
        return seen.pop("at", None), seen

    step, got = run(twin)
    if step is None or step == 0 or step % w == 0:
        return None
    _, want = run(registry.build(registry.by_id(training.anchor_id(network)), seed=1), last=step)
    return (step, {k: (got[step][k] - got[step - 1][k], want[step][k] - want[step - 1][k]) for k in want[step]},
            (step - 1) % w == 0)


def _where(network: str, step: int) -> str:
    """Where ``step`` falls in the trajectory's passes over its examples, when it is notable."""
    per_pass = training.pass_steps(network)
    npass, j = divmod(step, per_pass)
    if j == per_pass - 1:
        return f" (the pass's last batch, {networks.get(network).last_batch} rows)"
    return f" (the first step of pass {npass + 1}, reshuffled)" if j == 0 and npass else ""


def fit_path_departure(twin, dense_gradients: bool = False, dropout: bool = True):
    """(steps taken or None, [problems], margin) of the twin's own fit against its framework
    reference's per-step path (``check_fit_path_parity``). ``dense_gradients`` and ``dropout``
    (the per-step path compared with: dropout on or off) are diagnosis's counterfactuals."""
    from twinbench.impls.adapter import Twin

    if type(twin).fit_steps is Twin.fit_steps:  # no fit of its own: nothing to run or compare
        return None, [], 0.0
    network = twin.network
    b = training.reference_free_run(twin.framework, network, T.FIT_STEPS, dropout)
    start = training.trajectory_start(network)
    twin.set_weights(start)
    batch = twin.net.train_batch  # the recipe's, as the trajectory's
    x, y = training.trajectory_data(network)
    after: dict = {}
    steps = twin.fit_steps(x, y, batch, T.FIT_STEPS, T.TRAJECTORY_SEED, T.TRAJECTORY_DROPOUT_SEED,
                           after_step=lambda i: after.__setitem__(i, twin.get_weights()),
                           dense_gradients=dense_gradients)
    if steps is None or steps != T.FIT_STEPS:
        return steps, [], float("inf")
    last = T.FIT_STEPS - 1
    problems, margin = _weight_problems(network, after, {s: b.weights[s] for s in after}, start)
    final, final_margin = _weight_problems(network, {last: twin.get_weights()}, {last: b.weights[last]}, start)
    problems += [p.replace(f"after step {last}:", "after fit returned:") for p in final]
    return steps, problems, max(margin, final_margin)


def check_fit_path_parity(twin):
    """The twin's own training entry point (Keras: ``model.fit``, with whatever the model
    overrides) from the shared start, FIT_STEPS steps with the trajectory's batches and shared
    masks, against the per-step path of its framework's reference: the weights after every step
    and after ``fit`` returns (where an EMA overwrites them), relative to each layer's movement."""
    reference = registry.reference(twin.framework, twin.network).id
    steps, problems, margin = fit_path_departure(twin)
    if steps is None:
        return {"fit_path": "the recipe's loop is the training path (no fit of its own)"}
    if steps != T.FIT_STEPS:
        raise failure(f"{twin.name}: fit ran {steps} training steps on {T.FIT_STEPS} batches; the reference takes one "
                      "step per batch", margin=margin)
    if problems:
        raise failure(f"{twin.name}: training through fit departs from the per-step path of {reference} (dropout on, "
                      "shared masks): " + "; ".join(problems[:5]) + ". A per-step check calls the model, the loss and "
                      "apply_gradients directly: look at what fit adds (an overridden train_step, EMA, gradient "
                      "accumulation, sparse gradients handed to the optimizer, callbacks that change weights)",
                      margin=margin)
    return {"fit_steps": steps, "margin": margin}
