"""Equivalence: the twins compute the same function and train the same way, proven numerically.

Each check runs a twin against a partner reference: the other framework's reference for a
reference twin, and both frameworks' references for a --impl candidate. Weights travel through
the canonical layout in both directions ("into" the twin from the partner, "from" the twin to
the partner). Tolerances come from fixtures/tolerances.py.
"""

import os
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from twinbench.fixtures import tolerances as T
from twinbench.impls import networks, registry
from twinbench.impls.adapter import CandidateError, from_logits, to_log_probs
from twinbench.suites.helpers import failure, gradient_errors, margin_of, max_violation, real_batch, reference_loss, reference_loss_of


def _pair(twin, partner_id, direction):
    """Build the partner (another seed, so transfer really changes weights) and copy weights."""
    partner = registry.build(registry.by_id(partner_id), seed=1)
    src, dst = (partner, twin) if direction == "into" else (twin, partner)
    dst.set_weights(src.get_weights())
    return partner


def _compare_outputs(twin, partner, x):
    """Compare the twin's output with the partner's (a reference: logits). Logits are defined only
    up to a per-row constant, so logits and log-probabilities are compared as log-probabilities (a
    log-softmax output declared as logits is the same model); probabilities as probabilities."""
    raw, ref = twin.forward(x), partner.forward(x)
    if raw.shape != ref.shape:
        raise AssertionError(f"{twin.name}: output shape {raw.shape}, the partner gives {ref.shape}")
    if not np.all(np.isfinite(raw)):
        raise AssertionError(f"{twin.name}: {int((~np.isfinite(raw)).sum())} non-finite outputs")
    if twin.output == "probs":
        got, want = np.asarray(raw, np.float64), from_logits(ref, "probs")
    else:
        got, want = to_log_probs(raw, twin.output), to_log_probs(ref, "logits")
    return got, want, max_violation(got, want, T.FORWARD_ATOL, T.FORWARD_RTOL)


def first_divergence(twin, partner, x) -> str:
    """Walk the layers with parameters in order and name the first whose input differs.

    Inputs of parameterised layers are comparable across build styles (an activation fused into
    a Keras layer or applied with F.relu both end up in the next layer's input)."""
    mine = twin.trace(x, keep_values=True).param_layers()
    theirs = partner.trace(x, keep_values=True).param_layers()
    refs = [r[0] for r in twin.net.param_layers]
    last_ok = "the input"
    for i, (a, b) in enumerate(zip(mine, theirs)):
        ref = refs[i] if i < len(refs) else a.name
        if a.in_value is None or b.in_value is None or a.in_value.shape != b.in_value.shape:
            return f"layer inputs cannot be compared at {ref} (shapes {a.in_shape} vs {b.in_shape})"
        diff, _, ok = max_violation(a.in_value, b.in_value, T.FORWARD_ATOL, T.FORWARD_RTOL)
        if not ok:
            return (f"the twins agree up to {last_ok} and first diverge at the input of {ref} "
                    f"({a.name}, max |diff| {diff:.3g}): the fault is between {last_ok} and {ref}")
        last_ok = f"the input of {ref}"
    return f"every parameterised layer's input agrees; the twins diverge after {last_ok} (its output or the final activation)"


def check_forward_parity(twin, partner, direction):
    """Eval mode, fp32, real test batch (MNIST images / tweets with padding)."""
    other = _pair(twin, partner, direction)
    x, _ = real_batch(twin.network, T.PARITY_BATCH)
    got, want, (diff, worst, ok) = _compare_outputs(twin, other, x)
    margin = margin_of(got, want, T.FORWARD_ATOL, T.FORWARD_RTOL)
    if not ok:
        raise failure(f"{twin.name} vs {partner} ({direction}): outputs differ, max |diff| {diff:.3g} at {worst} "
                      f"(got {got[worst]:.7g}, want {want[worst]:.7g}), tolerance atol {T.FORWARD_ATOL} + rtol "
                      f"{T.FORWARD_RTOL}. {first_divergence(twin, other, x)}", margin=margin)
    return {"forward_max_abs_diff": diff, "margin": margin}


def check_forward_parity_confident(twin, partner):
    """Forward parity with the head scaled to a trained model's logit range (see tolerances)."""
    other = registry.build(registry.by_id(partner), seed=1)
    weights = other.get_weights()
    head = list(twin.net.canonical_weights)[-2:]  # the output layer's kernel and bias
    x, _ = real_batch(twin.network, T.PARITY_BATCH)
    scale = twin.net.confident_head_scale
    if scale is None:  # a pair that states none: fitted on the partner, the logits scale with the head
        scale = 2 * T.CONFIDENT_MIN_LOGIT / max(float(np.abs(other.forward(x)).max()), 1e-6)
    for name in head:
        weights[name] = weights[name] * np.float32(scale)
    other.set_weights(weights)
    twin.set_weights(weights)
    reach = float(np.abs(other.forward(x)).max())
    assert reach >= T.CONFIDENT_MIN_LOGIT, (f"{partner}: scaled head gives |logit| <= {reach:.3g}, below "
                                            f"{T.CONFIDENT_MIN_LOGIT}: the confident regime was not reached")
    got, want, (diff, worst, ok) = _compare_outputs(twin, other, x)
    margin = margin_of(got, want, T.FORWARD_ATOL, T.FORWARD_RTOL)
    if not ok:
        raise failure(f"{twin.name} vs {partner} with {', '.join(head)} x{scale:g} (|logit| "
                      f"up to {reach:.3g}): outputs differ, max |diff| {diff:.3g} at {worst} (got {got[worst]:.7g}, want "
                      f"{want[worst]:.7g}), tolerance atol {T.FORWARD_ATOL} + rtol {T.FORWARD_RTOL}", margin=margin)
    return {"forward_confident_max_abs_diff": diff, "confident_max_logit": reach, "margin": margin}


def _drawn_batches(network):
    """Batches of 1 to 9: images or features with values over the input's draw range, or token rows
    weighted to padding and the vocabulary's edges."""
    spec = networks.get(network).input
    if spec.kind != "tokens":
        low, high = spec.draw_range
        return st.integers(1, 9).flatmap(lambda b: hnp.arrays(
            np.float32, spec.batch_shape(b), elements=st.floats(low, high, width=32)))
    pad, top = spec.pad_id, spec.vocab - 1
    ids = st.sampled_from([pad, pad, pad, 1, 2, top]) | st.integers(0, top)
    return st.integers(1, 9).flatmap(lambda b: hnp.arrays(np.int64, spec.batch_shape(b), elements=ids))


def _explicit_batches(network):
    """The batches always tried first: zero and saturated values, or padding and the vocabulary's edges."""
    spec = networks.get(network).input
    if spec.kind != "tokens":
        return [np.zeros(spec.batch_shape(1), np.float32), np.full(spec.batch_shape(3), spec.saturated, np.float32)]
    # an all-padding row, the vocabulary's top id, and an odd batch of padding, edges and id 1
    (length,), top = spec.shape, spec.vocab - 1
    return [np.full((1, length), spec.pad_id, np.int64), np.full((2, length), top),
            np.stack([np.full(length, spec.pad_id, np.int64), np.arange(length) % 2 * top, np.ones(length, np.int64)])]


def check_forward_parity_hypothesis(twin, partner):
    """Hypothesis-drawn inputs: odd batch sizes; tweets with all-padding rows and edge ids."""
    other = _pair(twin, partner, "into")
    inputs, explicit = _drawn_batches(twin.network), _explicit_batches(twin.network)
    worst, margins, failed = [], [], []  # failed: the margins of the falsifying examples

    # derandomize seeds the draws from run()'s code (not its decorators or comments): editing it
    # changes the examples drawn.
    @settings(max_examples=10, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(inputs)
    def run(x):
        try:
            got, want, (diff, idx, ok) = _compare_outputs(twin, other, x)
        except (AssertionError, CandidateError):
            failed.append(float("inf"))  # a non-finite or misshapen output, or none, has no finite margin
            raise
        worst.append(diff)
        margins.append(margin_of(got, want, T.FORWARD_ATOL, T.FORWARD_RTOL))
        if not ok:
            failed.append(margins[-1])
        assert ok, (f"{twin.name} vs {partner}: max |diff| {diff:.3g} at {idx} on a drawn batch of {len(x)}, "
                    f"tolerance atol {T.FORWARD_ATOL} + rtol {T.FORWARD_RTOL}. {first_divergence(twin, other, x)}")

    for x in explicit:
        run = example(x)(run)
    try:
        run()
    except AssertionError as exc:
        raise failure(str(exc), margin=max(failed, default=float("inf"))) from exc
    except ExceptionGroup as group:  # several distinct failures (an assertion on one batch, a raise on another)
        first = _verdict(group)
        if first is group:
            raise
        if isinstance(first, AssertionError):
            raise failure(str(first), margin=max(failed, default=float("inf"))) from group
        raise first from group
    return {"forward_max_abs_diff_drawn": max(worst), "margin": max(margins)}


def _verdict(group: BaseExceptionGroup) -> BaseException:
    """The first of a Hypothesis run's distinct failures when every one is a verdict on the twin
    (an assertion, or the candidate's own error, which fails the check); else the group, a crash."""
    leaves, todo = [], [group]
    while todo:
        e = todo.pop(0)
        if isinstance(e, BaseExceptionGroup):
            todo[:0] = list(e.exceptions)
        else:
            leaves.append(e)
    return leaves[0] if all(isinstance(e, (AssertionError, CandidateError)) for e in leaves) else group


def loss_pair(twin, rows: int, n: int = 64) -> tuple[float, float]:
    """(the recipe's loss, the reference loss) on the first ``rows`` of ``n`` drawn outputs."""
    rng = np.random.RandomState(3)
    if twin.net.target.kind == "classes":
        classes = twin.net.target.classes
        logits = (rng.standard_normal((n, classes)) * 3).astype(np.float32)
        y = rng.randint(0, classes, n).astype(np.int64)
    else:
        logits = (rng.standard_normal((n, 1)) * 3).astype(np.float32)
        y = rng.randint(0, 2, n).astype(np.float32)
    if twin.output == "logits" and logits.shape[-1] > 1:
        # Logits are defined up to a per-row constant: give the recipe normalised ones (log-softmax),
        # which a log-softmax model declared as logits also produces. CE from logits is unchanged.
        logits = to_log_probs(logits, "logits").astype(np.float32)
    outputs = from_logits(logits, twin.output).astype(np.float32)
    logits, outputs, y = logits[:rows], outputs[:rows], y[:rows]
    # The reference loss of exactly the fp32 outputs the recipe sees: for a probability output,
    # the fp32 rounding of p near 1 moves log(1 - p) by ~1e-3, which is the output kind's
    # resolution, not the loss's fault. For logits it is the closed form from the logits.
    want = (reference_loss(twin.network, logits, y) if twin.output == "logits"
            else reference_loss_of(twin.network, outputs, twin.output, y))
    return twin.loss_value(outputs, y), want


def check_loss_parity(twin):
    """The recipe's loss on given outputs equals the reference loss (CE / BCE from logits), on 64
    rows, on the recipe's batch size and on the epoch's last, shorter batch (the spec's last_batch): a loss
    normalised by a fixed batch size is right on one batch size only."""
    n = 64
    diffs = {}
    for rows in dict.fromkeys((n, twin.net.train_batch, twin.net.last_batch)):
        got, want = loss_pair(twin, rows, n)
        diff = abs(got - want)
        if not diff <= T.LOSS_ATOL:
            last = "" if rows == n else (" (the recipe's batch size; " if rows == twin.net.train_batch else
                                         " (the epoch's last batch; ") + f"on {n} rows it is {diffs[n]:.3g} off)"
            raise failure(f"{twin.name}: recipe loss {got:.7g} on {rows} outputs of kind '{twin.output}', reference "
                          f"{twin.net.target.loss_name} from logits {want:.7g}: |diff| "
                          f"{diff:.3g} > {T.LOSS_ATOL}{last}", margin=diff / T.LOSS_ATOL)
        diffs[rows] = diff
    worst = max(diffs.values())
    return {"loss_abs_diff": worst, "margin": worst / T.LOSS_ATOL}


def check_gradient_parity(twin, partner):
    """Same weights, same batch, dropout off: every parameter's gradient, canonical layout."""
    other = _pair(twin, partner, "from")
    x, y = real_batch(twin.network, T.GRAD_BATCH)
    loss_a, ga = twin.loss_and_grads(x, y)
    loss_b, gb = other.loss_and_grads(x, y)
    worst, problems = gradient_errors(ga, gb, twin.network, T.GRAD_RTOL)
    if problems:
        raise failure(f"{twin.name} vs {partner}: gradients differ (tolerance {T.GRAD_RTOL} of each tensor's largest "
                      f"gradient); losses {loss_a:.7g} vs {loss_b:.7g}\n  " + "\n  ".join(problems),
                      margin=worst / T.GRAD_RTOL)
    return {"grad_max_rel_err": worst, "margin": worst / T.GRAD_RTOL}


def check_optimizer_step_parity(twin, partner):
    """From identical weights, apply identical gradients for a few steps; weights must agree."""
    other = _pair(twin, partner, "from")
    x, y = real_batch(twin.network, T.GRAD_BATCH)
    _, grads = other.loss_and_grads(x, y)
    for _ in range(T.OPT_STEPS):
        twin.optimizer_step(grads)
        other.optimizer_step(grads)
    a, b = twin.get_weights(), other.get_weights()
    problems, worst, margin = [], 0.0, 0.0
    for name in twin.net.canonical_weights:
        diff, idx, ok = max_violation(a[name], b[name], T.OPT_ATOL, T.OPT_RTOL)
        worst, margin = max(worst, diff), max(margin, margin_of(a[name], b[name], T.OPT_ATOL, T.OPT_RTOL))
        if not ok:
            problems.append(f"{name}: max |diff| {diff:.3g} at {idx} (got {a[name][idx]:.7g}, want {b[name][idx]:.7g})")
    if problems:
        raise failure(f"{twin.name} vs {partner}: weights differ after {T.OPT_STEPS} optimizer steps "
                      f"(tolerance atol {T.OPT_ATOL} + rtol {T.OPT_RTOL})\n  " + "\n  ".join(problems), margin=margin)
    return {"opt_step_max_abs_diff": worst, "margin": margin}


def check_lr_schedule_parity(twin, partner):
    """The learning rate of every param group at every optimizer step of the reference budget
    (every epoch), against the literal recipe and the partner's."""
    steps, epochs = twin.net.steps_per_epoch, twin.net.budget_epochs
    other = registry.build(registry.by_id(partner), seed=1)
    want = other.learning_rates(steps, epochs).astype(np.float32)
    literal = np.array([twin.net.lr_schedule(i // steps) for i in range(steps * epochs)], np.float32)
    groups = twin.learning_rates_by_group(steps, epochs)
    worst = 0.0
    for group, rates in groups.items():
        got = rates.astype(np.float32)
        where = "" if len(groups) == 1 else f" in the param group of {group}"
        for label, ref in (("the literal recipe", literal), (partner, want)):
            ulps = np.abs(got - ref) / np.spacing(np.abs(ref))
            bad = np.flatnonzero(ulps > T.LR_ULPS)
            assert not len(bad), (f"{twin.name}: learning rate{where} differs from {label} first at step {bad[0]} "
                                  f"(epoch {bad[0] // steps}, step {bad[0] % steps} in it): {got[bad[0]]:.9g} vs "
                                  f"{ref[bad[0]]:.9g}; {len(bad)} of {len(got)} steps differ by more than "
                                  f"{T.LR_ULPS} ulp")
        worst = max(worst, float(np.abs(got - want).max()))
    return {"lr_max_abs_diff": worst, "param_groups": len(groups)}


def check_weight_roundtrip(twin, partner):
    """twin -> canonical -> partner -> canonical -> twin is bit-identical, on random weights."""
    other = registry.build(registry.by_id(partner), seed=1)
    shapes = twin.net.canonical_weights

    @settings(max_examples=3, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(st.integers(0, 2**31 - 1))
    def run(seed):
        rng = np.random.RandomState(seed)
        start = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
        twin.set_weights(start)
        other.set_weights(twin.get_weights())
        twin.set_weights({k: v * 0 for k, v in start.items()})
        twin.set_weights(other.get_weights())
        back = twin.get_weights()
        for k in shapes:
            assert np.array_equal(back[k], start[k]), f"{twin.name} via {partner}: {k} changed in the round trip"

    run()


def check_transfer_refuses_bad_shapes(twin):
    """set_weights with a wrongly shaped value raises and names the parameter."""
    weights = twin.get_weights()
    name = sorted(weights)[0]
    weights[name] = np.zeros(tuple(d + 1 for d in weights[name].shape), np.float32)
    with pytest.raises(CandidateError) as err:
        twin.set_weights(weights)
    assert name in str(err.value), f"error does not name {name}: {err.value}"


def check_checkpoint_roundtrip(twin):
    """Save the weights in the framework's own format (torch state_dict loaded with
    weights_only=True; Keras save_weights/load_weights), reload: outputs are bit-identical.
    Whole-model serialization (Keras .keras) is not equivalence: it is tried and reported as a
    note with the fix, never a failure."""
    x, _ = real_batch(twin.network, 64)
    before = twin.forward(x)
    with tempfile.TemporaryDirectory() as tmp:
        path = twin.save(os.path.join(tmp, "checkpoint"), whole_model=False)
        twin.load(path)
        after = twin.forward(x)
        note = twin.whole_model_note(os.path.join(tmp, "whole"), x)
    assert np.array_equal(before, after), (f"{twin.name}: outputs changed after a weights save/load round trip, "
                                           f"max |diff| {np.abs(before - after).max():.3g}")
    return {"note": note} if note else {}
