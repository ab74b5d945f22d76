"""Diagnosis: the likely cause of a rejection, by counterfactual matching, never by guessing from names.

Each hypothesis is a known fault applied to the torch reference (impls/hypotheses.py: a
dropout of another kind, Keras's Adadelta defaults, a flatten in the other order...). A hypothesis
is a cause of a candidate's rejection when the candidate behaves like it, to fp32 noise, on every
probe where the hypothesis differs from the reference, and unlike the reference there. A probe is
one cheap thing a twin does from given weights (``Probes``):

- ``forward``: eval-mode log-probabilities of a fixed batch; ``train_forward``: the same in
  training mode, every stochastic op fed the same masks (impls/randomness.py);
- ``forward_negated``: ``forward`` with every weight negated. The first layer's every
  pre-activation changes sign there, so an activation is also seen on the other half of its
  domain. At the shared start the tweets' output bias outweighs the mean embedding (mostly
  padding), so every logit has the bias's sign and a ReLU on the logit changes nothing;
- ``loss``, ``grads``: the recipe's loss and its canonical gradients on that batch;
  ``loss_of_outputs``: the loss applied to the model's saved outputs, as the loss check does
  (Keras on the TensorFlow backend can train on an activation's logits that saved outputs lack);
- ``optimizer``: the weight displacement after replaying the recorded real gradients
  (suites/oracle.py) through the recipe's optimizer, compared up to one global factor (the
  learning rate's value and schedule are the ``schedule`` probe's);
- ``schedule``: the learning rate at every step of the budget;
- ``stochastic``: kind, granularity, rate and position of every stochastic op in training;
- ``declared``: the batch size and epochs a recipe declares.

A hypothesis that touches only some probes (the optimizer's, say) can confirm one cause of a fault
that has several. The learning-rate schedule is also fitted directly, so that any per-batch or
per-k-steps decay is named in its own terms. Where nothing matches, the cause is ``unknown``.

The hypotheses' probes are computed once per network per session, at the shared start weights
(the torch reference's seed-0 init); a candidate whose weight shapes differ from the reference's is
matched against the hypotheses that accept its own weights.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import os
from dataclasses import dataclass, field

import numpy as np

from twinbench.fixtures import tolerances as T
from twinbench.impls import networks, randomness, registry
from twinbench.impls.adapter import CandidateError, NoRecipe, to_log_probs
from twinbench.suites import oracle, refcache
from twinbench.suites.checks import equivalence, initialization, options, trajectory
from twinbench.suites.checks import randomness as randomness_checks
from twinbench.suites.helpers import REPRO_BATCH_ENV, real_batch

# Cause id -> (what it is, the fix). Every id a hypothesis maps to is here.
CAUSES = {
    "flatten-order": ("fc1's inputs are flattened in the other framework's order",
                      "flatten channel-major in torch and channel-last in Keras, or permute fc1's rows when porting"),
    "weight-layout": ("a kernel is transposed", "transpose the kernel when porting it"),
    "pooling-kind": ("the pooling is of another kind", "pool as the reference does (max 2x2 in the CNN, the mean over "
                                                       "the 42 positions in fastText)"),
    "pooling-size": ("the pooling's window or stride differs", "pool 2x2 with stride 2"),
    "pooling-axis": ("the mean runs over the wrong axis", "average over the 42 positions (axis 1)"),
    "missing-activation": ("an activation is missing", "add the ReLU back"),
    "activation-kind": ("an activation is of another kind or form (ReLU for another; GELU's tanh approximation for "
                        "the exact form; another LeakyReLU slope)",
                        "use the reference's activation in the same form (the CNN's ReLU; torch "
                        "nn.GELU(approximate=...) and keras.activations.gelu(approximate=...) alike; the same "
                        "negative slope)"),
    "extra-activation": ("an activation the reference does not have", "remove it"),
    "missing-bias": ("a layer has no bias", "give the layer its bias"),
    "kernel-size": ("a kernel has another size", "use the reference's 3x3 kernels"),
    "padding": ("a convolution is padded", "use 'valid' padding (padding=0)"),
    "optimizer-defaults": ("the optimizer runs at a framework's default hyperparameters",
                           "set every hyperparameter explicitly: Adadelta(lr 1.0, rho 0.9, eps 1e-6); "
                           "Adam(1e-3, 0.9, 0.999) with Keras's epsilon-hat 1e-7"),
    "epsilon-placement": ("Adam's epsilon sits in torch's place (added to sqrt(v-hat)) instead of Keras's "
                          "epsilon-hat (added to sqrt(v) before bias correction)",
                          "use the reference's AdamEpsilonHat (impls/torch_tweet_fasttext.py)"),
    "optimizer-hyperparameter": ("an optimizer hyperparameter differs", "use the recipe's value"),
    "optimizer-variant": ("the optimizer is a variant of the recipe's (AMSGrad)", "amsgrad=False"),
    "lr-schedule": ("the learning-rate schedule differs", "x0.7 once per epoch (every 938 steps): StepLR(step_size=1, "
                                                           "gamma=0.7) stepped per epoch, or ExponentialDecay(decay_steps="
                                                           "938, decay_rate=0.7, staircase=True)"),
    "batch-size": ("the recipe declares another batch size", "declare the recipe's batch size, or none"),
    "double-softmax": ("the model outputs probabilities that the loss treats as logits (a double softmax)",
                       "drop the final softmax, or declare output='probs' with a loss on probabilities"),
    "from-logits": ("the loss expects probabilities but is given logits", "from_logits=True"),
    "label-smoothing": ("the loss smooths the labels", "label_smoothing=0"),
    "loss-reduction": ("the loss is summed over the batch instead of averaged", "reduction='mean'"),
    "class-weights": ("the loss weights classes", "no class weights"),
    "weight-penalty": ("the loss adds a weight penalty (L1, L2 or coupled weight decay)", "remove the penalty"),
    "decoupled-weight-decay": ("the optimizer decays the weights (decoupled weight decay)", "weight_decay=0"),
    "gradient-clipping": ("the gradients are clipped", "no clipping"),
    "dropout-rate": ("a dropout has another rate", "use the reference's rates (0.25 after conv2, 0.5 after fc1)"),
    "dropout-kind": ("a dropout drops whole channels or rows instead of elements", "use element-wise Dropout"),
    "dropout-position": ("a dropout sits elsewhere", "put it where the reference has it"),
    "missing-dropout": ("a dropout is missing", "add it back"),
    "extra-stochastic-op": ("a stochastic op the reference does not have", "remove it"),
    "masked-mean": ("padding is left out of the mean", "average over all 42 positions, padding included (no mask)"),
    "padding-idx": ("the padding id's embedding is frozen (padding_idx)", "no padding_idx"),
    "optimizer-option": ("an option of the optimizer differs from the reference's",
                         "set every option as the reference optimizer does (fixtures/options_harmless.json lists "
                         "those shown not to change training)"),
    "sparse-embedding-update": ("fit hands the optimizer an embedding's gradient as IndexedSlices (a row per "
                                "occurrence of an id): Keras's Adam then adds each occurrence's squared gradient to v, "
                                "where torch's dense Adam adds the square of their sum, so ids repeated in a batch move "
                                "further",
                                "give the optimizer dense gradients (an optimizer whose apply() converts IndexedSlices "
                                "with tf.convert_to_tensor, as impls/keras_tweet_fasttext.DenseAdam)"),
    "unfed-random-draw": ("training draws random numbers outside the dropout layers (a generator of its own, "
                          "numpy, random, TensorFlow's random ops, a draw in the loss)",
                          "draw training-time randomness only through the framework's dropout layers, or remove it"),
    "fit-training-mode": ("fit runs the model in inference mode: the dropout layers are off in training (a "
                          "train_step that calls the model without training=True)",
                          "call the model with training=True in train_step"),
    "layer-option": ("an option of a parameterised layer differs from the reference layer's",
                     "set the layer's options as the reference does (fixtures/layer_options_harmless.json lists those "
                     "judged by value instead)"),
    "loss-normalisation": ("the loss is divided by a fixed number instead of the batch's size",
                           "average over the batch (reduction='mean'; Keras: the default sum_over_batch_size)"),
    "frozen-layer": ("a layer stops training part-way: from some step on its update vanishes",
                     "train every layer at every step (no requires_grad or trainable switch, no freezing callback)"),
    "late-update-scale": ("from some step on, an update is a constant times the reference's (a learning rate, a "
                          "scale or a rule keyed on the step count)", "use the recipe's update at every step"),
    "gate-order": ("a GRU's gate blocks are read in another order (r and z swapped)",
                   "reorder the gate blocks when porting: torch's are r, z, n, Keras's z, r, h (impls/layer_maps.py)"),
    "reset-formula": ("a GRU applies its reset gate before the recurrent product (Keras's reset_after=False)",
                      "use torch's formula: the reset gate on the recurrent product (Keras: reset_after=True)"),
    "recurrent-bias": ("a recurrent layer lacks one of its biases", "keep both: torch's bias_ih and bias_hh, the "
                       "(2, 3H) bias of Keras's GRU"),
    "sequence-direction": ("a recurrent layer reads the sequence backwards", "read it forwards (go_backwards=False)"),
    "sequence-pooling": ("the head reads the mean of a recurrent layer's states, not its last step",
                         "read the last step (return_sequences=False)"),
    "padding-side": ("the padding sits on the other side of the tokens", "pad after the tokens, as the data does"),
    "bn-momentum": ("a BatchNorm's momentum averages its running statistics at another rate (torch's momentum is "
                    "the new batch's weight, Keras's the old statistic's: torch 0.1 is Keras 0.9)",
                    "set momentum to the reference's: torch momentum=m is Keras momentum=1 - m"),
    "bn-epsilon": ("a BatchNorm's epsilon differs (torch's default 1e-5, Keras's 1e-3)",
                   "set eps/epsilon to the reference's value explicitly"),
    "bn-running-stats": ("a BatchNorm normalises with the wrong statistics: the batch's in evaluation (running "
                         "statistics untracked, or the layer kept in training mode), or the running ones in training "
                         "(frozen)",
                         "track running statistics (torch track_running_stats=True), normalise with them in evaluation "
                         "only, and leave the layer trainable (Keras trainable=True)"),
    "bn-affine": ("a BatchNorm lacks its scale (gamma) or its shift (beta)",
                  "keep both: torch affine=True, Keras center=True and scale=True"),
    "bn-position": ("a BatchNorm sits after its activation instead of before it", "normalise before the activation, "
                    "as the reference does"),
    "initialization": ("the weights are initialised from another law than the reference's",
                       "initialise as the torch reference: kaiming_uniform_(a=sqrt(5)) kernels and U(+-1/sqrt(fan_in)) "
                       "biases (Keras: VarianceScaling(1/3, 'fan_in', 'uniform') and RandomUniform(-b, b)), N(0, 1) "
                       "embeddings"),
}

# A hypothesis's operator (the part of its id between the network and "@") -> its cause.
CAUSE_OF = (
    ("flatten-order*", "flatten-order"), ("kernel-transposed", "weight-layout"), ("pool-kind*", "pooling-kind"), ("pool-size*", "pooling-size"),
    ("pool-stride*", "pooling-size"), ("wrong-axis", "pooling-axis"), ("activation-removed", "missing-activation"),
    ("relu-to-*", "activation-kind"), ("gelu-approximate=*", "activation-kind"), ("leaky-slope=*", "activation-kind"),
    ("activation-added", "extra-activation"), ("bias-removed", "missing-bias"),
    ("kernel=*", "kernel-size"), ("padding=*", "padding"), ("*=keras-default*", "optimizer-defaults"),
    ("epsilon=torch-default", "optimizer-defaults"), ("eps=torch-default", "epsilon-placement"),
    ("eps=1e-7-torch-placement", "epsilon-placement"),
    ("lr-x*", "optimizer-hyperparameter"), ("rho-x*", "optimizer-hyperparameter"), ("eps-x*", "optimizer-hyperparameter"),
    ("epsilon*-x*", "optimizer-hyperparameter"), ("beta?=*", "optimizer-hyperparameter"),
    ("amsgrad", "optimizer-variant"), ("grid-*", "optimizer-hyperparameter"), ("gamma*", "lr-schedule"), ("step_size*", "lr-schedule"),
    ("decay_steps*", "lr-schedule"), ("staircase*", "lr-schedule"), ("batch_size*", "batch-size"),
    ("probabilities-as-logits*", "double-softmax"), ("from_logits=False*", "from-logits"),
    ("label-smoothing*", "label-smoothing"), ("reduction=*", "loss-reduction"), ("class-weights*", "class-weights"),
    ("weight-decay-coupled*", "weight-penalty"), ("l1=*", "weight-penalty"), ("l2=*", "weight-penalty"),
    ("weight-decay-decoupled*", "decoupled-weight-decay"), ("clip-norm*", "gradient-clipping"),
    ("rate*", "dropout-rate"), ("channel-wise", "dropout-kind"), ("per-sample", "dropout-kind"),
    ("moved-*", "dropout-position"), ("dropout-removed", "missing-dropout"), ("extra-dropout", "extra-stochastic-op"),
    ("embedding-dropout", "extra-stochastic-op"), ("extra-spatial-dropout", "extra-stochastic-op"),
    ("gaussian-*", "extra-stochastic-op"),
    ("masked-mean", "masked-mean"), ("mask_zero", "masked-mean"), ("padding-idx*", "padding-idx"),
    ("gate-order*", "gate-order"), ("reset-before", "reset-formula"), ("reset_after=False", "reset-formula"),
    ("recurrent-bias-removed", "recurrent-bias"), ("go-backwards", "sequence-direction"),
    ("go_backwards", "sequence-direction"), ("mean-of-states", "sequence-pooling"), ("padding-first", "padding-side"),
    ("mask_zero-steps", "layer-option"), ("recurrent_activation=*", "layer-option"),
    ("recurrent_dropout=*", "extra-stochastic-op"), ("dropout=*", "extra-stochastic-op"),
    ("bn-momentum=*", "bn-momentum"), ("bn-eps*", "bn-epsilon"), ("bn-affine=*", "bn-affine"),
    ("bn-center=*", "bn-affine"), ("bn-scale=*", "bn-affine"), ("bn-stats-untracked", "bn-running-stats"),
    ("bn-always-training", "bn-running-stats"), ("bn-frozen", "bn-running-stats"), ("bn-after-relu", "bn-position"),
)
PROBES = ("forward", "forward_negated", "train_forward", "state", "loss", "loss_of_outputs", "grads", "optimizer", "schedule", "stochastic", "declared")


def cause_of(mutant_id: str) -> str | None:
    """The cause a mutant or hypothesis operator stands for (None: not in the catalogue)."""
    operator = mutant_id.split(".", 1)[1].rsplit("@", 1)[0]
    return next((cause for pattern, cause in CAUSE_OF if fnmatch.fnmatchcase(operator, pattern)), None)


@dataclass
class Probes:
    """What one twin does from given weights (None where it cannot: no recipe, shapes refused)."""

    shapes: dict
    values: dict = field(default_factory=dict)   # probe name -> array, float, tuple or dict


@dataclass
class Finding:
    cause: str
    sentence: str
    hypothesis: str = ""


def _probe_batch(network):
    """32 test examples spread over the first 512 (both classes of the tweets, every MNIST digit)."""
    x, y = real_batch(network, 512)
    return x[::16], y[::16]


def probes(twin, weights: dict | None) -> Probes:
    """Run every probe on ``twin`` from ``weights`` (its own when None)."""
    network = twin.network
    if weights is not None:
        twin.set_weights(weights)
    start = twin.get_weights()
    out = Probes({k: tuple(v.shape) for k, v in start.items()})
    x, y = _probe_batch(network)
    outputs = twin.forward(x)
    out.values["forward"] = to_log_probs(outputs, twin.output).astype(np.float64)
    try:  # a twin that refuses the negated weights loses this probe only
        stepped = set(networks.get(network).stepped_weights)  # a moving variance negated is no variance
        twin.set_weights({k: -v if k in stepped else v for k, v in start.items()})
        out.values["forward_negated"] = to_log_probs(twin.forward(x), twin.output).astype(np.float64)
    except Exception:  # noqa: BLE001 -- a candidate's own code: whatever it raises
        out.values["forward_negated"] = None
    finally:
        twin.set_weights(start)
    stream = randomness.Stream(T.TRAIN_MODE_STREAM_SEED)
    out.values["train_forward"] = to_log_probs(twin.forward(x, training=True, stream=stream), twin.output)
    out.values["state"] = _state_after_training(twin, start)
    out.values["stochastic"] = (tuple(op.signature() for op in stream.ops), tuple(stream.unrecognised))
    out.values["declared"] = dict(twin.declared)
    try:
        loss, grads = twin.loss_and_grads(x, y)
    except NoRecipe:
        return out
    out.values["loss"], out.values["grads"] = float(loss), grads
    out.values["loss_of_outputs"] = float(twin.loss_value(outputs, y))  # the outputs at ``start``, as saved
    out.values["schedule"] = np.asarray(twin.learning_rates(networks.get(network).steps_per_epoch, networks.get(network).budget_epochs),
                                        np.float64)
    rec = oracle.recording(network)
    if set(start) == set(rec.start) and all(start[k].shape == rec.start[k].shape for k in start):
        twin.set_weights(start)
        for g in rec.grads[:T.DIAGNOSIS_OPTIMIZER_STEPS]:
            twin.optimizer_step(g)
        moved = twin.get_weights()
        out.values["optimizer"] = {k: moved[k].astype(np.float64) - start[k] for k in start}
    return out


def _state_after_training(twin, start: dict) -> dict:
    """The state weights (a BatchNorm's moving statistics) after the training-mode pass above, which
    updates them as a training step does; the twin's weights are then put back."""
    stepped = set(networks.get(twin.network).stepped_weights)
    state = [k for k in start if k not in stepped]
    if not state:
        return {}
    moved = twin.get_weights()
    twin.set_weights(start)
    return {k: moved[k].astype(np.float64) for k in state if k in moved}


def _rel(a: dict, b: dict) -> float:
    """Largest per-tensor max |a - b| / max |b|."""
    worst = 0.0
    for k in b:
        scale = float(np.abs(b[k]).max(initial=0.0)) or 1.0
        worst = max(worst, float(np.abs(np.asarray(a[k], np.float64) - b[k]).max(initial=0.0)) / scale)
    return worst


def _optimizer_distance(a: dict, b: dict) -> float:
    """The optimizer dynamics check's own measure (suites/oracle.excess_error: beyond fp32 storage,
    in units of each tensor's scale of update), after one global factor on ``a``: the learning
    rate's value and schedule are the ``schedule`` probe's business. ``a`` is compared with ``c * b``
    and the excess then divided by ``c``: the fp32 storage allowance stays in absolute terms
    (dividing ``a`` by a learning-rate factor of 1e-3 first would magnify its rounding 1000-fold)."""
    rec = oracle.recording(next(n for n in networks.names() if set(networks.get(n).canonical_weights) == set(b)))
    dot = sum(float(np.vdot(a[k], b[k])) for k in b)
    norm = sum(float(np.vdot(b[k], b[k])) for k in b)
    c = dot / norm if norm > 0 and dot > 0 else 1.0
    return max(_scaled_excess(rec, k, a[k], b[k], c) for k in b)


def _scaled_excess(rec, name: str, a: np.ndarray, b: np.ndarray, c: float) -> float:
    """``a``'s excess error (oracle.excess_error, two fp32 sides) over ``c * b``, in units of ``b``'s
    own scale: compared with ``c * b`` and then divided by ``c``, so that the fp32 storage allowance
    stays in absolute terms (comparing ``a / c`` with ``b`` would magnify ``a``'s rounding 1/c-fold)."""
    return oracle.excess_error(rec, name, a, c * b, T.DIAGNOSIS_OPTIMIZER_STEPS, rounded_sides=2) / c


def distance(name: str, a, b) -> float:
    """How far probe ``name`` of two twins is apart, in the units of T.DIAGNOSIS_FLOOR[name]."""
    if a is None or b is None:
        return 0.0 if a is None and b is None else float("inf")
    if name == "declared":  # what both declare (a Keras model declares no batch size)
        return 0.0 if all(a[k] == b[k] for k in a.keys() & b.keys()) else float("inf")
    if name == "stochastic":
        return 0.0 if a == b else float("inf")
    if name == "grads":  # a frozen layer's missing gradient is zero (Keras's trainable=False has none)
        a = {k: a[k] if k in a else np.zeros_like(b[k]) for k in b} if set(a) <= set(b) else a
        b = {k: b[k] if k in b else np.zeros_like(a[k]) for k in a} if set(b) <= set(a) else b
    if name in ("grads", "optimizer", "state"):
        if set(a) != set(b) or any(np.shape(a[k]) != np.shape(b[k]) for k in a):
            return float("inf")
        return _optimizer_distance(a, b) if name == "optimizer" else _rel(a, b)
    if name in ("loss", "loss_of_outputs"):
        return 0.0 if a == b else abs(a - b) / max(abs(b), 1e-12)  # a == b: equal infinities too
    if np.shape(a) != np.shape(b):
        return float("inf")
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):  # inf - inf and x / 0: replaced where equal
        diff = np.where(a == b, 0.0, np.abs(a - b))  # a log-probability of -inf in both is no difference
        if name == "schedule":
            diff = np.where(diff == 0, 0.0, diff / np.abs(b))
    d = float(np.max(diff, initial=0.0))
    return d if np.isfinite(d) else float("inf")


def _differs(name, a, b) -> bool:
    return not distance(name, a.values.get(name), b.values.get(name)) <= T.DIAGNOSIS_FLOOR[name]


@functools.lru_cache(maxsize=None)
def _hypothesis_probes(network: str) -> tuple:
    """(reference probes, [(hypothesis, probes)]) at the shared start weights; once per network.
    Reference work (the torch reference and its mutants, no candidate's code). For MNIST
    (``CACHED_HYPOTHESES``) it is kept in the data cache (suites/refcache.py), versioned by
    ``PROBE_CODE``, the code it depends on beyond the cache's key, and verified on reuse by
    probing the reference and the first hypothesis again (bit for bit). The tweets' are cheap to
    probe and large to keep (README, "The reference cache"), so they are probed afresh."""
    from twinbench.impls.hypotheses import hypotheses

    hyps = hypotheses(network)
    if network not in CACHED_HYPOTHESES or os.environ.get(REPRO_BATCH_ENV):  # a capped batch: not the stored probes
        table = _probe_hypotheses(network, hyps)
    else:
        seen = {}  # the table unpacked once, by the verification of a stored entry

        def verify(arrays, meta):
            seen["table"] = _unpack_table(arrays, meta)
            return _verify_table(network, hyps, seen["table"])

        arrays, meta = refcache.get(f"hypothesis-probes-{network}", lambda: _pack_table(_probe_hypotheses(network, hyps)),
                                    verify, code=PROBE_CODE, network=network)
        table = seen["table"] if "cached" in meta else _unpack_table(arrays, meta)
    return table["reference"], [(h, table[h.id]) for h in hyps]


CACHED_HYPOTHESES = {"mnist_cnn"}
# What the hypotheses' probes depend on besides the reference cache's key (refcache.CODE, which
# leaves out the mutant generator and the suites).
PROBE_CODE = ("impls/mutants.py", "impls/hypotheses.py", "suites/diagnosis.py", "suites/oracle.py", "suites/helpers.py")


def _probe_hypotheses(network: str, hyps, first: int | None = None) -> dict:
    """{"reference": probes, hypothesis id: probes or None} at the shared start (the first
    ``first`` hypotheses only, for verification)."""
    start = oracle.recording(network).start
    table = {"reference": probes(registry.build(registry.reference("torch", network), seed=0), start)}
    for h in hyps[:first]:
        twin = registry.build(_spec(h), seed=0)
        try:
            table[h.id] = probes(twin, start)
        except Exception:  # shapes differ from the reference's: matched on the candidate's own weights
            table[h.id] = None
    return table


def _verify_table(network: str, hyps, stored: dict) -> str:
    """'' when the reference's and the first hypothesis's probes, recomputed, equal the stored
    ones exactly (values and types); else what differs."""
    if [k for k in stored if k != "reference"] != [h.id for h in hyps]:
        return "the stored hypotheses are not impls/hypotheses.py's"
    for name, live in _probe_hypotheses(network, hyps, first=1).items():
        if not _same_probes(live, stored[name]):
            return f"the probes of {name} differ from the stored ones"
    return ""


def _same_probes(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if a.shapes != b.shapes or a.values.keys() != b.values.keys():
        return False

    def same(x, y):
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            return (isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.dtype == y.dtype
                    and np.array_equal(x, y, equal_nan=True))
        if isinstance(x, dict) and isinstance(y, dict):
            return x.keys() == y.keys() and all(same(x[k], y[k]) for k in x)
        return type(x) is type(y) and (x == y or (x != x and y != y))  # NaN equals NaN here

    return all(same(a.values[k], b.values[k]) for k in a.values)


def _pack_table(table: dict) -> tuple:
    """(arrays, meta) for refcache: every array in the npz once, by content (most hypotheses share
    the reference's gradients or optimizer displacement: ~1.1 GB for MNIST stored per
    hypothesis), the rest (floats, the declared dict, the stochastic signatures) in JSON, with
    how to rebuild each value's type."""
    arrays, meta = {}, {"order": list(table), "probes": {}}

    def put(a) -> str:
        a = np.ascontiguousarray(a)
        digest = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode() + a.tobytes()).hexdigest()[:24]
        arrays[digest] = a
        return digest

    for name, p in table.items():
        if p is None:
            meta["probes"][name] = None
            continue
        kinds = {}
        for probe, v in p.values.items():
            if isinstance(v, np.ndarray):
                kinds[probe] = ["array", put(v)]
            elif probe in ("grads", "optimizer", "state"):
                kinds[probe] = ["tensors", {k: put(a) for k, a in v.items()}]
            elif probe == "stochastic":
                kinds[probe] = ["stochastic", [list(op) for op in v[0]], list(v[1])]
            else:  # None, a float, the declared dict
                kinds[probe] = ["json", v]
        meta["probes"][name] = {"shapes": {k: list(v) for k, v in p.shapes.items()}, "values": kinds}
    # Through JSON here, as the cache stores it: a fresh table and a reused one are unpacked from
    # the same values (a tuple in ``declared`` would otherwise become a list on reuse only).
    return arrays, json.loads(json.dumps(meta))


def _unpack_table(arrays: dict, meta: dict) -> dict:
    table = {}
    for name in meta["order"]:
        m = meta["probes"][name]
        if m is None:
            table[name] = None
            continue
        values = {}
        for probe, kind in m["values"].items():
            if kind[0] == "array":
                values[probe] = arrays[kind[1]]
            elif kind[0] == "tensors":
                values[probe] = {k: arrays[digest] for k, digest in kind[1].items()}
            elif kind[0] == "stochastic":
                values[probe] = (tuple(tuple(op) for op in kind[1]), tuple(kind[2]))
            else:
                values[probe] = kind[1]
        table[name] = Probes({k: tuple(v) for k, v in m["shapes"].items()}, values)
    return table


def _spec(h):
    return registry.ImplSpec(f"hypothesis-{h.id}", h.network, "torch", h.id, f"twinbench.impls.mutants:{h.key}", "candidate", h.doc)


def _explains(cand: Probes, hyp: Probes, ref: Probes) -> list | None:
    """The probes on which ``hyp`` explains the candidate's departure from the reference, or None
    when it does not: it must match the candidate on every probe where it differs from the
    reference, and the candidate must differ from the reference on at least one of them."""
    domain = [n for n in PROBES if _differs(n, hyp, ref)]
    if not domain or any(_differs(n, cand, hyp) for n in domain):
        return None
    return domain if any(_differs(n, cand, ref) for n in domain) else None


def _evidence(name, cand, hyp, ref) -> str:
    d_h, d_r = (distance(name, cand.values.get(name), p.values.get(name)) for p in (hyp, ref))
    return f"{name} {d_h:.2g} from it, {d_r:.2g} from the reference"


def fit_schedule(lrs: np.ndarray, steps_per_epoch: int) -> str:
    """The learning-rate schedule in words: constant, x g every k steps, or x g per step."""
    lrs = np.asarray(lrs, np.float64)
    changes = np.flatnonzero(~np.isclose(lrs[1:], lrs[:-1], rtol=1e-9, atol=0)) + 1
    if not len(changes):
        return f"constant {lrs[0]:.4g}"
    k = int(changes[0])
    factor = lrs[k] / lrs[k - 1]
    if k == 1 and len(changes) >= len(lrs) // 2:
        return (f"x{factor:.6g} every step (x{factor ** steps_per_epoch:.4g} per {steps_per_epoch} steps): "
                "decayed per batch")
    return f"x{factor:.4g} every {k} steps"


def _schedule_finding(cand: Probes, ref: Probes, network: str) -> Finding | None:
    """The learning rate fitted directly: a constant factor on the recipe's at every step is the
    base learning rate; any other difference is the schedule, named in its own terms."""
    got, want = cand.values.get("schedule"), ref.values.get("schedule")
    if got is None or want is None or not _differs("schedule", cand, ref):
        return None
    ratio = got / want
    if np.allclose(ratio, ratio[0], rtol=T.DIAGNOSIS_FLOOR["schedule"], atol=0):
        what, fix = CAUSES["optimizer-hyperparameter"]
        return Finding("optimizer-hyperparameter", f"{what}: the learning rate is x{ratio[0]:.6g} the recipe's at every "
                       f"step ({got[0]:.6g} where the recipe starts at {want[0]:.6g}). Fix: {fix}")
    steps = networks.get(network).steps_per_epoch
    what, fix = CAUSES["lr-schedule"]
    return Finding("lr-schedule", f"{what}: fitted {fit_schedule(got, steps)} from lr {got[0]:.4g}, where the recipe is "
                   f"{fit_schedule(want, steps)} from {want[0]:.4g}{_first_departure(got, want, steps)}. Fix: {fix}")


def _first_departure(got, want, steps: int) -> str:
    """Where two learning-rate series first part: '; first at epoch 11 (0.0282 where ...)'."""
    bad = np.flatnonzero(~np.isclose(got, want, rtol=T.DIAGNOSIS_FLOOR["schedule"], atol=0))
    if not len(bad):
        return ""
    i = int(bad[0])
    return f"; they first part at epoch {i // steps} (step {i}: {got[i]:.4g} where the recipe has {want[i]:.4g})"


def _group_schedule_finding(twin) -> Finding | None:
    """Each param group's schedule against the literal recipe: a group whose rate is not a constant
    times the recipe's has a schedule of its own (a constant factor is the per-layer rate's finding)."""
    try:
        groups = twin.learning_rates_by_group(twin.net.steps_per_epoch, twin.net.budget_epochs)
    except (NoRecipe, CandidateError):
        return None
    if len(groups) < 2:
        return None
    steps = twin.net.steps_per_epoch
    want = np.array([twin.net.lr_schedule(i // steps) for i in range(len(next(iter(groups.values()))))])
    odd = []
    for label, got in groups.items():
        ratio = got / want
        if not np.allclose(ratio, ratio[0], rtol=T.DIAGNOSIS_FLOOR["schedule"], atol=0):
            odd.append(f"the param group of {label}: fitted {fit_schedule(got, steps)}{_first_departure(got, want, steps)}")
    if not odd:
        return None
    what, fix = CAUSES["lr-schedule"]
    return Finding("lr-schedule", f"{what} in {len(odd)} of {len(groups)} param groups: " + "; ".join(odd)
                   + f". Fix: {fix}, for every param group")


def _configuration_finding(twin, cause: str, differences) -> Finding | None:
    """The options that differ from the reference's (``differences``: options.layer_differences or
    options.optimizer_differences, the options checks' evidence), when no hypothesis names a cause:
    a fact about the candidate's configuration, never a guess."""
    try:
        differing, _, _ = differences(twin)
    except (CandidateError, NoRecipe):
        return None
    if not differing:
        return None
    what, fix = CAUSES[cause]
    return Finding(cause, f"{what}: {options.summary(differing)}. Fix: {fix}")


def _layer_lr_finding(cand: Probes, ref: Probes, network: str) -> Finding | None:
    """Learning rates per layer, fitted: each tensor's replayed displacement a constant times the
    recipe's (Adam's and Adadelta's updates scale with the learning rate), the constants not all
    equal. The schedule probe sees only the first param group's rate."""
    a, b = cand.values.get("optimizer"), ref.values.get("optimizer")
    if a is None or b is None or set(a) != set(b) or not _differs("optimizer", cand, ref):
        return None
    rec, steps = oracle.recording(network), T.DIAGNOSIS_OPTIMIZER_STEPS
    factors = {}
    for k in b:
        norm = float(np.vdot(b[k], b[k]))
        c = float(np.vdot(a[k], b[k])) / norm if norm > 0 else 0.0
        if c <= 0 or _scaled_excess(rec, k, a[k], b[k], c) > T.DIAGNOSIS_FLOOR["optimizer"]:
            return None
        factors[k] = c
    if max(factors.values()) <= min(factors.values()) * (1 + 1e-3):
        return None  # one factor for all: the learning rate itself, the schedule probe's business
    odd = ", ".join(f"{k} x{c:.4g}" for k, c in factors.items() if abs(c - 1) > 1e-3)
    what, fix = CAUSES["optimizer-hyperparameter"]
    return Finding("optimizer-hyperparameter", f"{what}: the learning rate differs by layer: each tensor's update "
                   f"after {steps} replayed steps is the recipe's times a constant: {odd} (the others x1; a param "
                   f"group with its own lr). Fix: one learning rate for every parameter, the recipe's")


def _stochastic_findings(cand: Probes, network: str) -> list[Finding]:
    """The structural check's evidence read directly: each stochastic op against the literal list."""
    got, unrecognised = cand.values["stochastic"]
    want = [tuple(w) for w in networks.get(network).stochastic_ops]
    desc = lambda sig: randomness.StochasticOp(*sig).describe()  # noqa: E731
    found = []

    def add(cause, evidence):
        what, fix = CAUSES[cause]
        found.append(Finding(cause, f"{what}: {evidence}. Fix: {fix}"))

    extra, missing = [g for g in got if g not in want], [w for w in want if w not in got]
    for w in list(missing):
        for g in [g for g in extra if g[3] == w[3] and g[0] == w[0]]:
            cause = "dropout-rate" if g[1] == w[1] else "dropout-kind"
            add(cause, f"{desc(g)} where the reference has {desc(w)}")
            extra.remove(g), missing.remove(w)
            break
    for w in list(missing):
        for g in [g for g in extra if g[:3] == w[:3]]:
            add("dropout-position", f"{desc(g)} where the reference has it after {w[3]}")
            extra.remove(g), missing.remove(w)
            break
    for g in extra:
        add("extra-stochastic-op", desc(g))
    for w in missing:
        add("missing-dropout", f"no {desc(w)}")
    if unrecognised:
        add("extra-stochastic-op", f"random numbers drawn in training by {', '.join(unrecognised)}")
    return found


def _smoothing_finding(twin, cand: Probes) -> Finding | None:
    """Label smoothing, fitted: the smoothed loss is linear in epsilon, (1 - eps) * L(y) + eps * L(u)
    with u the uniform target, so eps = (L_cand - L(y)) / (L(u) - L(y)); it must come out the
    same on two batches, within (0, 1)."""
    if "loss" not in cand.values:
        return None
    eps = []
    for x, y in (_probe_batch(twin.network), _second_batch(twin.network)):
        out = twin.forward(x)
        lp = to_log_probs(out, twin.output).astype(np.float64)
        hard = _nll(lp, y)
        uniform = float(np.mean(-lp.mean(axis=1)))
        got = twin.loss_value(out, y)
        eps.append((got - hard) / (uniform - hard) if uniform != hard else 0.0)
    if not (0.001 < eps[0] < 1 and abs(eps[0] - eps[1]) <= 1e-3 * eps[0]):
        return None
    what, fix = CAUSES["label-smoothing"]
    return Finding("label-smoothing", f"{what}: the loss is (1 - eps) * the recipe's + eps * the loss against uniform "
                   f"targets, eps fitted {eps[0]:.4g} and {eps[1]:.4g} on two batches. Fix: {fix}")


def _normalisation_finding(twin, cand: Probes) -> Finding | None:
    """A loss normalised by a fixed count N, fitted: on r rows the recipe's loss is r / N times the
    reference's for every r tried (N = 1: a sum, the ``loss-reduction`` cause's)."""
    if "loss" not in cand.values:
        return None
    counts = []
    for rows in (7, 16, 28, 32, 64):
        got, want = equivalence.loss_pair(twin, rows)
        if want == 0 or not np.isfinite(got):
            return None
        counts.append(rows * want / got if got else np.inf)
    fixed = counts[0]
    if not (np.isfinite(fixed) and all(abs(c - fixed) <= 1e-4 * fixed for c in counts) and abs(fixed - 1) > 1e-3):
        return None
    what, fix = CAUSES["loss-normalisation"]
    return Finding("loss-normalisation", f"{what}: on 7, 16, 28, 32 and 64 rows the loss is the batch's summed loss "
                   f"divided by {fixed:.4g}, whatever the batch's size (right only on batches of {round(fixed)}). "
                   f"Fix: {fix}")


def _fit_path_finding(twin) -> Finding | None:
    """fit's departure from the per-step path, explained by a counterfactual that removes it: the
    same fit with sparse gradients made dense before the optimizer sees them, or fit compared with
    the reference's per-step path with dropout off (a train_step that calls the model without
    training=True)."""
    spec = getattr(twin, "spec", None)
    if spec is None:
        return None
    try:  # each run on a fresh build: fit leaves the optimizer's state behind
        steps, problems, _ = trajectory.fit_path_departure(registry.build(spec, seed=0))
        if steps is None or not problems:
            return None
        for cause, kwargs, how in (("sparse-embedding-update", {"dense_gradients": True},
                                    "with the gradients made dense it follows it"),
                                   ("fit-training-mode", {"dropout": False},
                                    "it follows the reference's per-step path with dropout off")):
            steps, other, margin = trajectory.fit_path_departure(registry.build(spec, seed=0), **kwargs)
            if steps is not None and not other:
                what, fix = CAUSES[cause]
                return Finding(cause, f"{what}: fit departs from the per-step path ({problems[0]}); {how} (margin "
                               f"{margin:.3g}). Fix: {fix}")
    except (CandidateError, NoRecipe):
        return None
    return None


def _late_update_finding(spec, network: str) -> Finding | None:
    """Where the trajectory departs that no probe of the first steps explains: each tensor's update
    in the step before the departure, fitted as a constant times the anchor code's from the same
    weights (trajectory.departing_update). The fit holds when the residual is within
    DIAGNOSIS_UPDATE_FIT of the reference's update (L2); tensors at ~0 are frozen, tensors at
    one other constant are scaled; anything else stays unknown."""
    try:
        found = trajectory.departing_update(registry.build(spec, seed=0))
    except (CandidateError, NoRecipe, FloatingPointError, ValueError, RuntimeError):
        return None  # it cannot train where the trajectory runs: the failing checks say why
    if found is None:
        return None
    step, updates, same = found
    fit = T.DIAGNOSIS_UPDATE_FIT
    factors = {}
    for k, (got, want) in updates.items():
        norm = float(np.linalg.norm(want))
        if norm == 0:
            if float(np.linalg.norm(got)) > 0:
                return None  # it moves a tensor the reference leaves: no constant explains that
            continue
        c = float(np.vdot(got, want)) / norm ** 2
        if float(np.linalg.norm(got - c * want)) / norm > fit:
            return None
        factors[k] = c
    odd = {k: c for k, c in factors.items() if abs(c - 1) > fit}
    if not odd:
        return None
    frozen = all(abs(c) <= fit for c in odd.values())
    cause = "frozen-layer" if frozen else "late-update-scale"
    what, fix = CAUSES[cause]
    scales = ", ".join(f"{k} x{c:.3g}" for k, c in odd.items())
    start = "from the same weights" if same else "from weights whose losses agreed until then"
    return Finding(cause, f"{what}: the training loss departs from the reference's at step {step}; in the step "
                   f"before it, {start}, each tensor's update is the reference's times {scales} (the others x1, "
                   f"within {fit:g}). Fix: {fix}")


def _random_draw_finding(twin) -> Finding | None:
    """The determinism probe's evidence (suites/checks/randomness.py): which generator feeds a draw."""
    try:
        found = randomness_checks.unfed_draw(twin)
    except Exception:  # noqa: BLE001 -- a twin that cannot train: the failing checks say why
        return None
    if found is None:
        return None
    generator, changed, worst = found
    what, fix = CAUSES["unfed-random-draw"]
    where = (f"reseeding {generator}'s global generator changes" if generator is not None else
             "two passes from the same state and seeds differ in")
    return Finding("unfed-random-draw", f"{what}: with the masks fed, {where} the training-mode "
                   f"{', '.join(changed[:3])} (max |diff| {worst:.3g}). Fix: {fix}")


def _second_batch(network):
    x, y = real_batch(network, 1024)
    return x[512::16], y[512::16]


def _nll(lp, y) -> float:
    """Mean negative log-likelihood of the labels from log-probs (N, K); K = 2 columns for the
    tweets (log(1 - p), log p)."""
    return float(np.mean(-lp[np.arange(len(y)), np.asarray(y).astype(int).ravel()]))


def _layer_shapes(twin) -> list:
    """(kind, parameter count, of which state) of every parameterised layer, in model order:
    framework-neutral (a BatchNorm without gamma and beta holds as many values as one without
    running statistics; only the second holds no state)."""
    return [(layer.kind, layer.trainable + layer.non_trainable, layer.state) for layer in twin.param_layers()]


def _structural_findings(twin) -> list[Finding]:
    """For a candidate whose weights cannot be mapped onto the reference's: the hypotheses whose
    parameterised layers have exactly the candidate's parameter shapes."""
    ref, hyps = _hypothesis_probes(twin.network)
    x, _ = _probe_batch(twin.network)
    twin.forward(x[:2])
    got, findings = _layer_shapes(twin), []
    for h, _ in hyps:
        cause = cause_of(h.id)
        if cause is None or cause in {f.cause for f in findings}:
            continue
        hyp = registry.build(_spec(h), seed=0)
        hyp.forward(x[:2])
        if _layer_shapes(hyp) == got:
            what, fix = CAUSES[cause]
            findings.append(Finding(cause, f"{what}: its parameterised layers have exactly the parameter counts of the "
                                    f"reference with {h.doc} ({', '.join(f'{k} {n:,}' + (f' ({m:,} state)' if m else '') for k, n, m in got)}). "
                                    f"Fix: {fix}", h.id))
    return findings


def _init_finding(twin, shapes: dict) -> Finding | None:
    """The initialisation law, fitted weight by weight over fresh builds (suites/checks/initialization.py)."""
    spec = getattr(twin, "spec", None)
    if spec is None or shapes != {k: tuple(v) for k, v in twin.net.canonical_weights.items()}:
        return None  # other shapes: their own law is another one by construction, the shapes' cause says why
    found = initialization.findings(spec, twin.network, shapes)
    if not found:
        return None
    what, fix = CAUSES["initialization"]
    return Finding("initialization", f"{what}: " + "; ".join(found) + f". Fix: {fix}")


def diagnose(twin, failed=None) -> list[Finding]:
    """The catalogue causes whose hypotheses explain the twin's departure from the reference.
    ``failed``: the names of the checks that rejected it, when known (the initialisation law is
    fitted only where its check failed; None fits it always)."""
    ref, hyps = _hypothesis_probes(twin.network)
    shared = oracle.recording(twin.network).start
    try:
        shapes = {k: tuple(v.shape) for k, v in twin.get_weights().items()}
    except CandidateError:  # weights that map onto no reference weight: compare the layers' shapes
        return _structural_findings(twin)
    fit_init = failed is None or any(str(n).startswith("check_initial_weights_law") for n in failed)
    init = _init_finding(twin, shapes) if fit_init else None
    fit_path = _fit_path_finding(twin) if failed is None or "check_fit_path_parity" in failed else None
    draw = (_random_draw_finding(twin) if failed is None or "check_every_random_draw_is_fed" in failed else None)
    own_weights = shapes != {k: tuple(v.shape) for k, v in shared.items()}
    try:
        cand = probes(twin, None if own_weights else shared)
    except (CandidateError, FloatingPointError, ValueError, RuntimeError):
        return [f for f in (init, fit_path, draw) if f]  # it crashes where the probes run: the failing checks' messages say where
    findings = [f for f in (init, fit_path, draw, _schedule_finding(cand, ref, twin.network), _smoothing_finding(twin, cand),
                            _normalisation_finding(twin, cand),
                            _layer_lr_finding(cand, ref, twin.network)) if f]
    group = _group_schedule_finding(twin)
    if group is not None and not any(f.cause == "lr-schedule" for f in findings):
        findings.append(group)
    findings += _stochastic_findings(cand, twin.network)
    seen = {f.cause for f in findings}
    for h, hp in hyps:
        cause = cause_of(h.id)
        if cause is None or cause in seen:
            continue
        if own_weights:
            hp = _probes_on(h, twin)  # the candidate's own weights, where the hypothesis accepts them
        domain = _explains(cand, hp, ref) if hp is not None else None
        if domain is None:
            continue
        seen.add(cause)
        what, fix = CAUSES[cause]
        evidence = "; ".join(_evidence(n, cand, hp, ref) for n in domain)
        findings.append(Finding(cause, f"{what}: it behaves as the reference with {h.doc} ({evidence}). Fix: {fix}", h.id))
    if not findings:
        findings = [f for f in (_configuration_finding(twin, "optimizer-option", options.optimizer_differences),
                                _configuration_finding(twin, "layer-option", options.layer_differences)) if f]
    if not findings and getattr(twin, "spec", None) is not None and (
            failed is None or any(str(n).startswith("check_trajectory_parity") for n in failed)):
        findings = [f for f in (_late_update_finding(twin.spec, twin.network),) if f]
    return _merged(findings)


def _merged(findings: list) -> list:
    """One finding per cause (their evidence joined); a framework's defaults, when matched, stand
    for the bare learning-rate ratio the schedule fit also sees."""
    causes = [f.cause for f in findings]
    if "optimizer-defaults" in causes:
        findings = [f for f in findings if not (f.cause == "optimizer-hyperparameter" and not f.hypothesis)]
    out: dict = {}
    for f in findings:
        if f.cause in out:
            out[f.cause].sentence = out[f.cause].sentence.split(". Fix: ")[0] + "; and " + \
                f.sentence.split(": ", 1)[1]
        else:
            out[f.cause] = Finding(f.cause, f.sentence, f.hypothesis)
    return list(out.values())


def _probes_on(h, twin) -> Probes | None:
    hyp = registry.build(_spec(h), seed=0)
    try:
        return probes(hyp, twin.get_weights())
    except Exception:
        return None


def explain(spec, failed: list, details: dict) -> list[str]:
    """The terminal and report lines for a rejected candidate: one per likely cause, or the
    unknown cause with the first divergence (never a guess). The network's torch reference (a
    pair's torch twin, under --network) is what diagnosis holds every other twin to: its causes are
    named on the other twin's line."""
    if spec == registry.reference("torch", spec.network):
        return [f"likely cause: see {registry.reference('keras', spec.network).id}'s line: diagnosis holds the "
                "other twin to this one, with the faults it knows applied to this one"]
    try:
        findings = diagnose(registry.build(spec, seed=0), failed)
    except Exception as exc:  # the candidate cannot even be built or probed: its checks say why
        findings, note = [], f" (the probes could not run: {type(exc).__name__}: {exc})"
    else:
        note = ""
    if findings:
        return [f"likely cause [{f.cause}]: {f.sentence}" for f in findings]
    first = f"{failed[0]}: {details.get(failed[0], '')}" if failed else "none"
    return [f"likely cause: unknown{note}; no hypothesis of the catalogue explains it. First divergence: {first}"[:600]]
