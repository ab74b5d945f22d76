"""Training-time randomness: which stochastic ops a twin has, and that it computes the same thing
as its partner in training mode when both are fed the same masks (impls/randomness.py).

- ``check_stochastic_ops``: the kind (dropout, Gaussian noise), granularity (element- or
  channel-wise), rate and position (the parameterised layer it follows) of every stochastic op of
  a training-mode forward pass, against the literal list in fixtures/expected.py. Functional
  dropout tied to ``self.training`` is the same op as a dropout module.
- ``check_train_mode_parity``: training-mode outputs, loss and gradients against the partner's,
  with shared masks, at the eval-mode tolerances.

- ``check_every_random_draw_is_fed``: the determinism probe, which needs no list of ops: with
  the masks fed, a training-mode pass repeated from the same state is bit-identical, and
  reseeding each global generator in turn (torch, numpy, random, TensorFlow) changes nothing.

A twin that draws random numbers in training other than through the intercepted ops fails the
first two where the adapters recognise the draw (with the layer named), and the probe wherever it
comes from: a private generator, numpy, ``random``, ``tf.random``, a draw in the loss.
"""

import numpy as np

from twinbench.fixtures import tolerances as T
from twinbench.impls import randomness, registry
from twinbench.impls.adapter import CandidateError, to_log_probs
from twinbench.suites.helpers import failure, gradient_errors, max_violation, real_batch


def _unrecognised(twin, stream):
    assert not stream.unrecognised, (f"{twin.name}: unrecognised random op in training: "
                                     f"{', '.join(stream.unrecognised)} drew random numbers that cannot be shared "
                                     "with the partner (use a dropout or Gaussian-noise layer or functional op)")


def check_stochastic_ops(twin):
    """Kind, granularity, rate and position of every stochastic op, against the literal list."""
    x, _ = real_batch(twin.network, 16)
    stream = randomness.Stream(T.TRAIN_MODE_STREAM_SEED)
    twin.forward(x, training=True, stream=stream)
    _unrecognised(twin, stream)
    got = [op.signature() for op in stream.ops]
    want = [tuple(w) for w in twin.net.stochastic_ops]
    if got != want:
        desc = lambda sig: randomness.StochasticOp(*sig).describe()  # noqa: E731
        extra = [f"extra {op.describe()} ({op.where})" for op in stream.ops if op.signature() not in want]
        missing = [f"missing {desc(w)}" for w in want if w not in got]
        order = [] if extra or missing else ["the same ops in another order"]
        raise failure(f"{twin.name}: stochastic ops in training differ from the reference's: "
                      + "; ".join(extra + missing + order) + f". Seen: {[op.describe() for op in stream.ops] or 'none'}; "
                      f"reference: {[desc(w) for w in want] or 'none'}", stochastic_ops=len(got))
    return {"stochastic_ops": len(got)}


def check_train_mode_parity(twin, partner):
    """Training mode, shared masks: outputs, the loss value and every gradient against the partner's."""
    other = registry.build(registry.by_id(partner), seed=1)
    twin.set_weights(other.get_weights())
    x, y = real_batch(twin.network, T.GRAD_BATCH)
    streams = [randomness.Stream(T.TRAIN_MODE_STREAM_SEED) for _ in range(2)]
    got = twin.forward(x, training=True, stream=streams[0])
    _unrecognised(twin, streams[0])
    want = other.forward(x, training=True, stream=streams[1])  # a reference: logits
    assert got.shape == want.shape, f"{twin.name}: training-mode output shape {got.shape}, the partner gives {want.shape}"
    diff, worst, ok = max_violation(to_log_probs(got, twin.output), to_log_probs(want, "logits"),
                                    T.FORWARD_ATOL, T.FORWARD_RTOL)
    margin = diff / (T.FORWARD_ATOL + T.FORWARD_RTOL)
    if not ok:
        raise failure(f"{twin.name} vs {partner} in training mode with shared masks: log-probabilities differ, max "
                      f"|diff| {diff:.3g} at {worst}, tolerance atol {T.FORWARD_ATOL} + rtol {T.FORWARD_RTOL}. Ops seen: "
                      f"{[op.describe() for op in streams[0].ops] or 'none'}; the partner's: "
                      f"{[op.describe() for op in streams[1].ops] or 'none'}", margin=margin)
    if not twin.has_recipe:  # a model-only twin: the outputs are this family's; loss and gradients the recipe's
        return {"train_mode_max_abs_diff": diff, "margin": margin,
                "recipe": "none: the training-mode loss and gradients are not compared (model-only)"}
    loss_a, ga = twin.loss_and_grads(x, y, training=True, stream=randomness.Stream(T.TRAIN_MODE_STREAM_SEED))
    loss_b, gb = other.loss_and_grads(x, y, training=True, stream=randomness.Stream(T.TRAIN_MODE_STREAM_SEED))
    loss_diff = abs(float(loss_a) - float(loss_b))
    margin = max(margin, loss_diff / T.LOSS_ATOL)
    if not loss_diff <= T.LOSS_ATOL:
        raise failure(f"{twin.name} vs {partner} in training mode with shared masks: the training loss is "
                      f"{loss_a:.7g}, the partner's {loss_b:.7g} (|diff| {loss_diff:.3g} > {T.LOSS_ATOL})", margin=margin)
    worst_rel, problems = gradient_errors(ga, gb, twin.network, T.GRAD_RTOL)
    margin = max(margin, worst_rel / T.GRAD_RTOL)
    if problems:
        raise failure(f"{twin.name} vs {partner} in training mode with shared masks: gradients differ (tolerance "
                      f"{T.GRAD_RTOL} of each tensor's largest); losses {loss_a:.7g} vs {loss_b:.7g}\n  "
                      + "\n  ".join(problems), margin=margin)
    return {"train_mode_max_abs_diff": diff, "train_mode_loss_abs_diff": loss_diff,
            "train_mode_grad_max_rel_err": worst_rel, "margin": margin}


def _training_pass(twin, x, y, seeds: dict, weights: dict | None = None) -> dict:
    """One training-mode pass with the masks fed, after reseeding the global generators, from
    ``weights`` (a forward that changes weights in place, such as an embedding's max_norm, must
    not pass for randomness)."""
    if weights is not None:
        twin.set_weights(weights)
    for generator, seed in seeds.items():
        randomness.reseed(generator, seed)
    stream = randomness.Stream(T.TRAIN_MODE_STREAM_SEED)
    if not twin.has_recipe:  # a model-only twin: its outputs
        return {"output": np.asarray(twin.forward(x, training=True, stream=stream))}
    loss, grads = twin.loss_and_grads(x, y, training=True, stream=stream)
    return {"loss": np.asarray(loss, dtype=np.float64)} | {f"{name}'s gradient": g for name, g in grads.items()}


def _changes(a: dict, b: dict) -> tuple[list, float]:
    """What differs between two passes, and the largest absolute difference."""
    changed = [k for k in a if not np.array_equal(a[k], b.get(k), equal_nan=True)]
    worst = max((float(np.nanmax(np.abs(np.asarray(a[k], np.float64) - np.asarray(b[k], np.float64))))
                 for k in changed if np.shape(a[k]) == np.shape(b.get(k))), default=float("inf"))
    return changed, worst


def unfed_draw(twin):
    """Where a training-mode pass draws random numbers the shared masks do not feed: None, or
    (None, what changed, max |diff|) for a generator that advances between calls, or (the global
    generator whose reseeding changes the pass, what changed, max |diff|)."""
    x, y = real_batch(twin.network, T.DETERMINISM_BATCH)
    first, other = T.DETERMINISM_SEEDS
    base = {g: first for g in randomness.GLOBAL_GENERATORS}
    try:
        weights = twin.get_weights()
    except CandidateError:  # weights that map onto no reference weight: the passes run from where they are
        weights = None
    start = _training_pass(twin, x, y, base, weights)
    changed, worst = _changes(start, _training_pass(twin, x, y, base, weights))
    if changed:
        return None, changed, worst
    for generator in randomness.GLOBAL_GENERATORS:
        changed, worst = _changes(start, _training_pass(twin, x, y, base | {generator: other}, weights))
        if changed:
            return generator, changed, worst
    return None


def check_every_random_draw_is_fed(twin):
    """With the masks fed, nothing in training is random: a pass repeated from the same state is
    bit-identical, and reseeding torch's, numpy's, random's or TensorFlow's global generator
    changes nothing. Needs no list of ops: any other draw shows."""
    what = "loss and gradients" if twin.has_recipe else "outputs"
    found = unfed_draw(twin)
    if found is None:
        return {"generators_reseeded": len(randomness.GLOBAL_GENERATORS)}
    generator, changed, worst = found
    if generator is None:
        raise failure(f"{twin.name}: unrecognised random op in training: two training-mode passes from the same "
                      f"weights, batch, shared masks and generator seeds give different {what} ({', '.join(changed[:3])}"
                      f"; max |diff| {worst:.3g}): a draw from a generator that advances between calls (a private "
                      "torch.Generator, a Keras SeedGenerator, a stateful RNG), which the shared masks cannot cover",
                      determinism_max_abs_diff=worst)
    raise failure(f"{twin.name}: unrecognised random op in training: reseeding {generator}'s global generator "
                  f"changes the training-mode {what} ({', '.join(changed[:3])}; max |diff| {worst:.3g}): "
                  f"a random draw from {generator} that the shared masks do not cover",
                  determinism_max_abs_diff=worst)
