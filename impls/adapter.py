"""The one framework-neutral interface that suites call.

A ``Twin`` wraps one model (and, where given, its recipe) of one framework and speaks numpy in
the canonical layout of ``fixtures/expected.py``: images NHWC, conv kernels (kh, kw, in, out),
dense kernels (in, out), flattened conv features in (H, W, C) order. Nothing in this module
imports torch or tensorflow; ``impls/torch_adapter.py`` and ``impls/keras_adapter.py`` do.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass, field

import numpy as np

from twinbench.impls import networks, randomness

OUTPUT_KINDS = ("logits", "log_probs", "probs")
PARAM_KINDS = networks.MAPPED_KINDS  # layer kinds whose parameters the adapters map (impls/networks/)


class CandidateError(Exception):
    """The model under test did something the contract does not allow (raised, wrong shape,
    unmappable weights). Checks turn it into a failed check with this message."""


class NoRecipe(Exception):
    """The twin has no recipe (model-only candidate); recipe checks skip with this reason."""


@dataclass
class LayerRecord:
    """One leaf layer seen during a forward pass, shapes and values in canonical layout."""

    name: str
    kind: str
    type: str
    in_shape: tuple | None = None
    out_shape: tuple | None = None
    in_value: np.ndarray | None = field(default=None, repr=False)
    out_value: np.ndarray | None = field(default=None, repr=False)


@dataclass
class ParamLayer:
    """One layer that owns parameters: its framework name, kind and counts."""

    name: str
    kind: str
    type: str
    trainable: int
    non_trainable: int
    params: dict  # framework parameter name -> framework shape
    state: int = 0  # of the counts, the state's (a BatchNorm's moving statistics): never stepped


def _unpaired(mine: list, ref: tuple) -> str:
    """Which layers have no partner, aligned by kind (the longest common run of kinds), each with
    its type, kind and shapes, and what a user can do about it; never a guess at a mapping."""
    import difflib

    said = []
    ops = difflib.SequenceMatcher(a=[p.kind for p in mine], b=[r[1] for r in ref], autojunk=False).get_opcodes()
    for tag, i1, i2, j1, j2 in ops:
        if tag == "equal":
            continue
        for p in mine[i1:i2]:
            shapes = ", ".join(f"{k} {tuple(v)}" for k, v in p.params.items())
            fix = (f"the adapters map no layer of this kind (they map {', '.join(PARAM_KINDS)})"
                   if p.kind not in PARAM_KINDS else
                   "if it belongs to the network, declare it in the spec (param_layers, canonical_weights, init_laws)")
            said.append(f"{p.name} ({p.type}, kind {p.kind}; {shapes}) has no partner: {fix}")
        said += [f"the reference's {r[0]} ({r[1]}, {r[2]} -> {r[3]}) has no partner here" for r in ref[j1:j2]]
    return "; ".join(said)


@dataclass
class Trace:
    layers: list
    output: np.ndarray | None
    error: str | None  # set when the forward pass raised (records up to the crash are kept)

    def param_layers(self) -> list:
        """Records of the layers with parameters, in call order; a layer called twice counts once."""
        seen, out = set(), []
        for rec in self.layers:
            if rec.kind in PARAM_KINDS and rec.name not in seen:
                seen.add(rec.name)
                out.append(rec)
        return out


_KINDS = (
    ("batchnorm", re.compile(r"batch_?norm", re.I)),
    ("embedding", re.compile(r"embedding", re.I)),
    ("conv", re.compile(r"conv", re.I)),
    ("gru", re.compile(r"gru", re.I)),
    ("lstm", re.compile(r"lstm", re.I)),
    ("dense", re.compile(r"linear|dense", re.I)),
    ("pool", re.compile(r"pool", re.I)),
    ("dropout", re.compile(r"dropout", re.I)),
    ("flatten", re.compile(r"flatten", re.I)),
    ("activation", re.compile(r"relu|softmax|sigmoid|tanh|activation", re.I)),
)


def layer_kind(type_name: str) -> str:
    """Kind of a layer from its class name, the same rule for torch modules and Keras layers."""
    for kind, pattern in _KINDS:
        if pattern.search(type_name):
            return kind
    return "other"


def is_recurrent_cell(type_name: str) -> bool:
    """A recurrent cell (torch's nn.GRUCell, Keras's GRUCell), called once per step of a loop its
    model writes: its input is one step, so the sequence's shape is not its to compare."""
    return layer_kind(type_name) in ("gru", "lstm") and type_name.endswith("Cell")


def nchw_flat_to_nhwc_flat(x: np.ndarray, hwc: tuple) -> np.ndarray:
    """Reorder the last axis of features flattened as (C, H, W) into (H, W, C) order."""
    h, w, c = hwc
    lead = x.shape[:-1]
    return x.reshape(*lead, c, h, w).swapaxes(-3, -2).swapaxes(-2, -1).reshape(*lead, h * w * c)


class Twin(abc.ABC):
    """One model of one framework behind the framework-neutral interface.

    Inputs: canonical numpy arrays, as the network's spec declares them (``self.net.input``:
    float32 NHWC images, int64 token ids). Targets: int64 class ids (N,) or float32 {0, 1} (N,)
    (``self.net.target``).
    """

    framework: str  # "torch" or "keras"

    def __init__(self, name: str, network: str, output: str, has_recipe: bool):
        self.net = networks.get(network)  # the network's spec (impls/networks/); raises for an unknown one
        if output not in OUTPUT_KINDS:
            raise ValueError(f"output must be one of {OUTPUT_KINDS}, got {output!r}")
        self.name, self.network, self.output, self.has_recipe = name, network, output, has_recipe
        self.declared: dict = {}  # recipe values the twin declares beyond loss and optimizer (batch_size, epochs)
        self.spec = None  # the registry.ImplSpec it was built from (registry.build sets it)

    def __repr__(self):
        return f"<{type(self).__name__} {self.name}>"

    # -- forward ------------------------------------------------------------------------------
    @abc.abstractmethod
    def forward(self, x: np.ndarray, training: bool = False, stream=None) -> np.ndarray:
        """The model's raw output (in its declared output kind) as float numpy. In training mode
        with a ``randomness.Stream``, its stochastic ops are fed the stream's masks and noise."""

    @abc.abstractmethod
    def forward_on(self, device: str, x: np.ndarray) -> np.ndarray:
        """Eval-mode forward on an accelerator ("cuda", "mps" or "gpu"); the model stays where it was."""

    @abc.abstractmethod
    def trace(self, x: np.ndarray, keep_values: bool = False, training: bool = False) -> Trace:
        """Run a forward pass (eval mode unless ``training``) and record every leaf layer's
        input and output in the canonical layout."""

    # -- structure ----------------------------------------------------------------------------
    @abc.abstractmethod
    def param_layers(self) -> list[ParamLayer]:
        """Layers that own parameters, in model order."""

    # -- weights (canonical layout, names from fixtures/expected.CANONICAL_WEIGHTS) ------------
    @abc.abstractmethod
    def get_weights(self) -> dict[str, np.ndarray]:
        ...

    @abc.abstractmethod
    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        ...

    # -- recipe -------------------------------------------------------------------------------
    @abc.abstractmethod
    def loss_and_grads(self, x: np.ndarray, y: np.ndarray, training: bool = False,
                       stream=None) -> tuple[float, dict[str, np.ndarray]]:
        """Recipe loss on a batch and canonical gradients: eval mode (dropout off), or training
        mode with the stochastic ops fed from ``stream`` (impls/randomness.py)."""

    @abc.abstractmethod
    def loss_value(self, outputs: np.ndarray, y: np.ndarray) -> float:
        """The recipe's loss for given model outputs (in the twin's output kind) and targets."""

    @abc.abstractmethod
    def optimizer_step(self, grads: dict[str, np.ndarray]) -> None:
        """Apply one step of the recipe's optimizer with the given canonical gradients."""

    @abc.abstractmethod
    def learning_rates(self, steps_per_epoch: int, epochs: int) -> np.ndarray:
        """The learning rate used at every optimizer step of the budget."""

    def learning_rates_by_group(self, steps_per_epoch: int, epochs: int) -> dict[str, np.ndarray]:
        """{param group: its learning rate at every optimizer step of the budget}; one group,
        all parameters, unless the framework has param groups (torch)."""
        return {"all parameters": self.learning_rates(steps_per_epoch, epochs)}

    @abc.abstractmethod
    def fit_epoch(self, x: np.ndarray, y: np.ndarray, epoch: int, batch_size: int, seed: int) -> float:
        """One epoch of the recipe in train mode (dropout on), batches in ``batch_order(n, epoch,
        seed)``, the LR schedule stepped as the recipe says; returns the mean training loss."""

    def fit(self, x: np.ndarray, y: np.ndarray, epochs: int, batch_size: int, seed: int) -> list[float]:
        """Train ``epochs`` epochs under the recipe; return the mean training loss of each."""
        return [self.fit_epoch(x, y, epoch, batch_size, seed) for epoch in range(epochs)]

    def train_steps(self, x: np.ndarray, y: np.ndarray, batch_size: int, steps: int, seed: int,
                    stop=None, dropout_seed: int | None = None, after_step=None) -> list[float]:
        """``steps`` optimizer steps of the recipe in eval mode (dropout off), batches drawn in the
        shared ``batch_order``; returns the loss before each step. The steps pass over ``x`` as
        epochs do: pass p in ``batch_order(len(x), p, seed)``, its last batch the remainder (shorter
        than ``batch_size`` where it does not divide ``len(x)``). Framework-neutral on purpose:
        both twins take the same loop, batches and streams, so only the frameworks' arithmetic
        differs (an adapter may keep the gradients in its framework between the two halves of a
        step, ``_step_grads``/``_step_apply``, when that is the same update bit for bit).
        ``stop(step, loss)`` returning True ends the run early (the losses so far are returned).
        With ``dropout_seed``, steps run in training mode with shared masks (the stream of step i
        seeded ``randomness.step_seed(dropout_seed, i)``); ``after_step(i)`` runs after each update."""
        per_pass = -(-len(x) // batch_size)
        losses = []
        for i in range(steps):
            npass, j = divmod(i, per_pass)
            if j == 0:
                order = batch_order(len(x), npass, seed)
            idx = order[j * batch_size:(j + 1) * batch_size]
            if dropout_seed is None:
                loss, grads = self._step_grads(x[idx], y[idx])
            else:
                stream = randomness.Stream(randomness.step_seed(dropout_seed, i))
                loss, grads = self._step_grads(x[idx], y[idx], training=True, stream=stream)
                if stream.unrecognised:
                    raise CandidateError(f"unrecognised random op in training: {', '.join(stream.unrecognised)}")
            losses.append(loss)
            if stop is not None and stop(i, loss):
                break
            self._step_apply(grads)
            if after_step is not None:
                after_step(i)
        return losses

    def fit_steps(self, x: np.ndarray, y: np.ndarray, batch_size: int, steps: int, seed: int, dropout_seed: int,
                  after_step=None, dense_gradients: bool = False) -> int | None:
        """``steps`` steps through the framework's own training entry point (Keras: the model's
        ``fit``, with whatever it overrides: ``train_step``, EMA, gradient accumulation), batches
        as ``train_steps`` draws them and masks from the same streams; ``after_step(i)`` after each
        step's update. ``dense_gradients``: sparse gradients (an embedding's) made dense before the
        optimizer sees them, a counterfactual for diagnosis. Returns the steps taken, or None where
        the recipe is the only training path (torch: the adapter's loop is the one a user's loop
        follows)."""
        return None

    def _step_grads(self, x, y, training=False, stream=None):
        """``train_steps``' gradient half: (loss, what ``_step_apply`` takes). Here the canonical
        gradients of ``loss_and_grads``; an adapter may keep them in its framework instead (the
        torch one leaves them on the parameters), as long as the update is the same bit for bit."""
        return self.loss_and_grads(x, y, training=training, stream=stream)

    def _step_apply(self, grads) -> None:
        self.optimizer_step(grads)

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> float:
        """Accuracy (fraction correct) on (x, y), in eval mode."""
        return self.count_correct(x, y, batch_size) / len(x)

    def count_correct(self, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> int:
        """How many of (x, y) the model classifies correctly, in eval mode (an exact count)."""
        correct = 0
        for start in range(0, len(x), batch_size):
            lp = to_log_probs(self.forward(x[start:start + batch_size]), self.output)
            truth = np.asarray(y[start:start + batch_size]).astype(np.int64)
            correct += int((lp.argmax(axis=-1) == truth).sum())
        return correct

    # -- speed (suites/test_speed.py) ----------------------------------------------------------
    @abc.abstractmethod
    def place(self, device: str) -> None:
        """Run on ``device`` from now on: "cpu", or "gpu" (cuda for torch, the first TF GPU) or
        "mps". Data given to later ``fit_epoch``/``inference_fn`` calls is moved there once."""

    @abc.abstractmethod
    def inference_fn(self, x: np.ndarray):
        """A zero-argument callable: one eval-mode forward pass on ``x`` (already on the device),
        synchronised once at the end (torch: device sync; TF: the result materialised)."""

    @abc.abstractmethod
    def use_variant(self, variant: str) -> None:
        """Switch to a faster execution variant (torch: "compile", "cudagraphs"; Keras: "xla").
        Benchmarks check forward parity of the variant before timing it."""

    @abc.abstractmethod
    def summary(self) -> str:
        """The framework's own model summary (torchinfo / keras Model.summary) as text."""

    def diagram(self, path: str) -> str:
        """Draw the model to ``path`` (PNG) where the framework can; return what was done."""
        return f"{self.framework}: no diagram tool (the summary above describes the model)"

    @abc.abstractmethod
    def save(self, path: str, whole_model: bool = True) -> str:
        """Save a checkpoint in the framework's own format (the weights only, or with
        ``whole_model`` the model too where the framework has such a format); return the file."""

    @abc.abstractmethod
    def load(self, path: str) -> None:
        ...

    def whole_model_note(self, path: str, x: np.ndarray) -> str:
        """Try a whole-model save/load round trip; return a note (with the fix) when it does not
        work, "" when it does or the framework has no whole-model format beyond the weights."""
        return ""

    # -- shared, framework-neutral helpers ----------------------------------------------------
    def param_layer_map(self) -> list[tuple[ParamLayer, str]]:
        """Pair this model's parameter layers with the reference layers, by order and kind."""
        ref = self.net.param_layers
        mine = self.param_layers()
        if len(mine) != len(ref):
            raise CandidateError(
                f"{len(mine)} layers with parameters ({', '.join(p.name for p in mine)}); "
                f"the reference has {len(ref)} ({', '.join(r[0] for r in ref)}): " + _unpaired(mine, ref))
        pairs = []
        for layer, (ref_name, ref_kind, _, _) in zip(mine, ref):
            if layer.kind != ref_kind:
                raise CandidateError(f"layer {layer.name} ({layer.type}) is a {layer.kind} layer where "
                                     f"the reference has {ref_name} ({ref_kind})")
            pairs.append((layer, ref_name))
        return pairs

    def layer_options(self) -> dict[str, dict]:
        """{reference layer name: the options of the layer mapped onto it} (Keras: get_config();
        torch: the module's public attributes of plain type); raises CandidateError when the
        layers cannot be mapped."""
        modules = self._param_layer_objects()
        return {ref: self._options_of(modules[layer.name]) for layer, ref in self.param_layer_map()}

    def _param_layer_objects(self) -> dict:
        raise NotImplementedError

    @staticmethod
    def _options_of(layer) -> dict:
        raise NotImplementedError

    def param_refs(self) -> dict:
        """{framework layer name: reference layer name} for the layers with parameters; empty
        when they cannot be mapped (the checks that need the map say why)."""
        try:
            return {layer.name: ref for layer, ref in self.param_layer_map()}
        except CandidateError:
            return {}

    def _check_names(self, names) -> None:
        """Every canonical weight of the network must have a counterpart in this model."""
        missing = sorted(set(self.net.canonical_weights) - set(names))
        if missing:
            raise CandidateError(f"no {self.framework} weight maps to reference {', '.join(missing)}")

    def predict_log_probs(self, x: np.ndarray) -> np.ndarray:
        """log-probabilities of the classes, whatever the output kind (float64)."""
        return to_log_probs(self.forward(x), self.output)


def to_log_probs(out: np.ndarray, kind: str) -> np.ndarray:
    """Binary single-output models give [log p(0), log p(1)]; multi-class ones log-softmax."""
    out = np.asarray(out, dtype=np.float64)
    if out.shape[-1] == 1:
        if kind == "logits":
            z = out
            return np.concatenate([-np.logaddexp(0, z), -np.logaddexp(0, -z)], axis=-1)
        p = np.exp(out) if kind == "log_probs" else out
        with np.errstate(divide="ignore"):
            return np.log(np.concatenate([1 - p, p], axis=-1))
    if kind == "logits":
        m = out.max(axis=-1, keepdims=True)
        return out - m - np.log(np.exp(out - m).sum(axis=-1, keepdims=True))
    if kind == "log_probs":
        return out
    with np.errstate(divide="ignore"):
        return np.log(out)


def from_logits(logits: np.ndarray, kind: str) -> np.ndarray:
    """Turn reference logits into another output kind, in float64 (for comparisons)."""
    z = np.asarray(logits, dtype=np.float64)
    if kind == "logits":
        return z
    if z.shape[-1] == 1:
        return -np.logaddexp(0, -z) if kind == "log_probs" else 1 / (1 + np.exp(-z))
    lp = to_log_probs(z, "logits")
    return lp if kind == "log_probs" else np.exp(lp)


def batch_order(n: int, epoch: int, seed: int, shuffle: bool = True) -> np.ndarray:
    """The sample order of one epoch; shared by both frameworks' training loops."""
    if not shuffle:
        return np.arange(n)
    return np.random.RandomState(seed + epoch).permutation(n)


def check_canonical_shape(cname, fname, shape, network, given=False):
    want = networks.get(network).canonical_weights.get(cname)
    if want is not None and tuple(shape) != tuple(want):
        what = "value given for" if given else "parameter"
        raise CandidateError(f"{what} {cname} (framework name {fname}) has canonical shape "
                             f"{tuple(shape)}; the reference shape is {tuple(want)}")
