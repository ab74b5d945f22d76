"""Training-time randomness: which stochastic ops a twin has, and that it computes the same thing
as its partner in training mode when both are fed the same masks (impls/randomness.py).

- ``check_stochastic_ops``: the kind (dropout, Gaussian noise), granularity (element- or
  channel-wise), rate and position (the parameterised layer it follows) of every stochastic op of
  a training-mode forward pass, against the literal list in fixtures/expected.py. Functional
  dropout tied to ``self.training`` is the same op as a dropout module.
- ``check_train_mode_parity``: training-mode outputs, loss and gradients against the partner's,
  with shared masks, at the eval-mode tolerances.

A twin that draws random numbers in training other than through the intercepted ops fails both,
with "unrecognised random op in training" and the layer named.
"""

from fixtures import expected as E
from fixtures import tolerances as T
from impls import randomness, registry
from impls.adapter import to_log_probs
from suites.helpers import failure, gradient_errors, max_violation, real_batch


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
    want = [tuple(w) for w in E.STOCHASTIC_OPS[twin.network]]
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
    """Training mode, shared masks: outputs, loss and every gradient against the partner's."""
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
    loss_a, ga = twin.loss_and_grads(x, y, training=True, stream=randomness.Stream(T.TRAIN_MODE_STREAM_SEED))
    loss_b, gb = other.loss_and_grads(x, y, training=True, stream=randomness.Stream(T.TRAIN_MODE_STREAM_SEED))
    worst_rel, problems = gradient_errors(ga, gb, twin.network, T.GRAD_RTOL)
    margin = max(margin, worst_rel / T.GRAD_RTOL)
    if problems:
        raise failure(f"{twin.name} vs {partner} in training mode with shared masks: gradients differ (tolerance "
                      f"{T.GRAD_RTOL} of each tensor's largest); losses {loss_a:.7g} vs {loss_b:.7g}\n  "
                      + "\n  ".join(problems), margin=margin)
    return {"train_mode_max_abs_diff": diff, "train_mode_grad_max_rel_err": worst_rel, "margin": margin}
