"""A network is a spec: what every check reads, instead of a network's name.

One module per network under ``impls/networks/`` defines ``SPEC``, a ``NetworkSpec``: its name;
its input (shape, dtype, kind, and for token inputs the vocabulary and the padding); its target
(classes or a binary label); its data (the offline splits, fixtures/data.py); its torch and Keras
builders in every build style; its recipe (batch, steps per epoch, the epoch's last batch, the
budget, the learning rate at every epoch, the optimizer as a literal); its literals (per-layer
shapes and counts, canonical weights and their initialisation laws, stochastic ops); its gates;
and the tolerances that are facts about it (the trajectory's window). The values of the two
reference networks are literal data in fixtures/expected.py and fixtures/tolerances.py; their
spec modules only gather them. A check asks ``get(twin.network)`` and reads fields, so a network
registered with ``register`` runs the same checks as the references. A user's pair may leave the
layer literals (``STRUCTURE``) out: they are read off its torch twin (impls/derive.py) and
recorded with ``--record-literals FILE``.

Nothing here imports torch or tensorflow.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from twinbench.fixtures import expected as E

# image: float32, canonical NHWC, torch NCHW; features: float32 (B, ...), the same layout in both;
# tokens: integer ids (B, T), int64 for torch, int32 for Keras.
INPUT_KINDS = ("image", "features", "tokens")
# The kinds of parameterised layer the adapters map between the frameworks (recurrent layers by
# impls/layer_maps.py); a BatchNorm layer's running statistics are mapped with its gamma and beta
# (canonical weights, never stepped by the optimizer).
MAPPED_KINDS = ("conv", "dense", "embedding", "batchnorm", "gru", "lstm")
# The optimizers suites/oracle.py replays in float64, with the hyperparameters each literal must
# state (weight_decay, and SGD's momentum, default to 0).
OPTIMIZER_KINDS = {"adadelta": ("lr", "rho", "eps"), "adam": ("lr", "beta_1", "beta_2", "epsilon_hat"),
                   "sgd": ("lr",)}
TARGET_KINDS = ("classes", "binary")  # classes: int64 ids, softmax cross-entropy; binary: {0, 1}, sigmoid BCE


class SpecError(ValueError):
    """A network spec that cannot be used: the message names the field and the fix."""


class NoLiterals(Exception):
    """A check needs a recorded literal (golden outputs) that a user's pair has not recorded yet:
    the check is ``no literals`` and the verdict INCOMPLETE, with how to record them."""


@dataclass(frozen=True)
class Input:
    shape: tuple            # one example, canonical layout (no batch axis): (28, 28, 1); (42,)
    kind: str               # one of INPUT_KINDS
    vocab: int | None = None         # tokens: ids lie in [0, vocab)
    pad_id: int | None = None        # tokens: the padding id
    padding_side: str | None = None  # tokens: "end" (ids first, padding after) or "start"
    draw_range: tuple | None = None  # float inputs: the values hypothesis draws, the data's range with a margin
    saturated: float | None = None   # float inputs: the largest value real data takes (MNIST: a white pixel)

    @property
    def dtype(self) -> type:
        """The canonical numpy dtype of drawn inputs, and of the ids a torch twin receives:
        float32 images and features, int64 token ids (the data may hold ids as int32)."""
        return np.int64 if self.kind == "tokens" else np.float32

    def batch_shape(self, batch: int) -> tuple:
        return (batch, *self.shape)

    def sample(self, batch: int, seed: int = 0) -> np.ndarray:
        """Deterministic synthetic inputs in the canonical layout (shape checks need no real data):
        standard normal values, uniform token ids."""
        rng = np.random.RandomState(seed)
        if self.kind != "tokens":
            return rng.standard_normal(self.batch_shape(batch)).astype(np.float32)
        return rng.randint(0, self.vocab, size=self.batch_shape(batch)).astype(np.int64)


@dataclass(frozen=True)
class Target:
    kind: str               # one of TARGET_KINDS
    classes: int            # output units: the classes, or 1 for a binary label

    @property
    def dtype(self) -> type:
        return np.int64 if self.kind == "classes" else np.float32

    @property
    def loss_name(self) -> str:
        return "CE" if self.kind == "classes" else "BCE"


@dataclass(frozen=True)
class NetworkSpec:
    name: str
    input: Input
    target: Target
    builders: dict                 # {"torch" | "keras": {build style: "module:factory"}}
    data: Callable | None          # data(part) -> (inputs, targets) of the "train" or "test" split, canonical;
                                   # None: drawn from the input description (``drawn_split``), no gates judged
    # literals: shapes and counts ("B" stands for the batch size). A user's pair may leave the
    # STRUCTURE ones out (None): ``--record-literals FILE`` records them from its torch twin.
    output_shape: tuple | None = None
    param_layers: tuple | None = None     # ((canonical name, kind, input shape, output shape), ...)
    canonical_weights: dict | None = None  # {canonical weight name: shape}
    init_laws: dict | None = None         # {canonical weight name: ("uniform", b) | ("normal", mean, std)}
    param_counts: dict | None = None      # {layer: parameters}
    total_params: int | None = None
    non_trainable_params: int | None = None
    optional_layers: tuple = ()    # parameter-free layers checked when present: (name, kind, output shape)
    fused_layers: dict = field(default_factory=dict)   # {layer: (optional layer it absorbs, output shape)}
    stochastic_ops: tuple | None = None   # ((kind, granularity, rate, the parameterised layer before), ...)
    flattened_from: dict = field(default_factory=dict)  # {dense layer: (H, W, C) of the features it reads}
    # recipe
    train_batch: int | None = None
    steps_per_epoch: int | None = None
    last_batch: int | None = None  # the epoch's last batch, shorter than train_batch
    budget_epochs: int | None = None
    lr_schedule: Callable | None = None  # epoch -> learning rate
    optimizer: dict | None = None        # the optimizer as a literal (suites/oracle.py replays it)
    # gates
    gate_permille: int | None = None
    agreement_points: float | None = None
    agreement_epochs: int | None = None
    majority_percent: float | None = None  # the majority class's share of the test split, when a gate must beat it
    flops_per_sample: dict = field(default_factory=dict)
    # tolerances that are facts about the network (fixtures/tolerances.py argues each)
    confident_head_scale: float | None = None
    trajectory_window: int | None = None
    trajectory_exact_steps: int | None = None
    trajectory_weight_rtol_exact: float | None = None
    # recorded literals (golden outputs): a reference network's live in fixtures/golden/; a user's
    # pair names its file (an absolute path once loaded), written by pytest --record-literals FILE
    literals: str | None = None
    # the STRUCTURE literals this spec neither states nor found recorded: derived from its torch
    # twin for this run (impls/derive.py), and the verdict INCOMPLETE until they are recorded
    derived_literals: tuple = ()

    def __post_init__(self):
        from twinbench.fixtures import tolerances as T

        for name, value in T.PAIR_DEFAULTS.items():  # a pair that states no network facts: general ones
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        problems = []
        if self.input.kind not in INPUT_KINDS:
            problems.append(f"input.kind {self.input.kind!r} (use one of {', '.join(INPUT_KINDS)})")
        if self.input.kind == "tokens" and not self.input.vocab:
            problems.append("input.vocab (token inputs need the vocabulary size)")
        if self.input.kind != "tokens" and (self.input.draw_range is None or self.input.saturated is None):
            problems.append("input.draw_range and input.saturated (float inputs need the range of their values)")
        if self.target.kind not in TARGET_KINDS:
            problems.append(f"target.kind {self.target.kind!r} (use one of {', '.join(TARGET_KINDS)})")
        if set(self.builders) - {"torch", "keras"} or not self.builders:
            problems.append(f"builders {sorted(self.builders)} (name torch and keras builders)")
        unmapped = sorted({row[1] for row in self.param_layers or ()} - set(MAPPED_KINDS))
        if unmapped:
            problems.append(f"param_layers of kind {', '.join(unmapped)} (the adapters map layers of kind "
                            f"{', '.join(MAPPED_KINDS)})")
        if self.init_laws and self.canonical_weights is not None and set(self.init_laws) - set(self.canonical_weights):
            problems.append(f"init_laws names {sorted(set(self.init_laws) - set(self.canonical_weights))}, "
                            "which are not canonical weights")
        if self.optimizer is not None:
            kind = self.optimizer.get("kind")
            if kind not in OPTIMIZER_KINDS:
                problems.append(f"optimizer kind {kind!r} (the float64 oracle replays "
                                f"{', '.join(OPTIMIZER_KINDS)}: give {{'kind': ..., 'lr': ...}})")
            else:
                lacking = [k for k in OPTIMIZER_KINDS[kind] if k not in self.optimizer]
                if lacking:
                    problems.append(f"optimizer (a {kind} literal needs {', '.join(lacking)})")
        if problems:
            raise SpecError(f"network spec {self.name!r}: bad " + "; ".join(problems))

    def unstated(self) -> tuple:
        """The STRUCTURE literals this spec leaves out (None)."""
        return tuple(name for name in STRUCTURE if getattr(self, name) is None)

    @property
    def stepped_weights(self) -> tuple:
        """The canonical weights the optimizer steps and a gradient holds: all but a BatchNorm's
        moving statistics (state, by layer kind: impls/layer_maps.STATE)."""
        from twinbench.impls import layer_maps

        state = {f"{row[0]}.{w}" for row in self.param_layers or () for w in layer_maps.STATE.get(row[1], ())}
        return tuple(name for name in self.canonical_weights or {} if name not in state)

    @property
    def state_size(self) -> int:
        """How many values the state weights hold (those ``stepped_weights`` leaves out): a
        BatchNorm's moving statistics, torch buffers and Keras non-trainable weights."""
        stepped = set(self.stepped_weights)
        return sum(int(np.prod(shape)) for name, shape in (self.canonical_weights or {}).items() if name not in stepped)

    @property
    def has_recipe(self) -> bool:
        return self.train_batch is not None and self.budget_epochs is not None

    def split(self, part: str, n: int | None = None) -> tuple:
        """(inputs, targets) of the ``part`` split, in the data's order, the first ``n`` when given:
        the one loader of examples every check uses. ``data`` is called once per split and process."""
        if part not in ("train", "test"):
            raise SpecError(f"part must be 'train' or 'test', got {part!r}")
        kept = _DATA.setdefault(self.name, {})
        if part not in kept:
            x, y = self.data(part) if self.data is not None else self.drawn_split(part)
            kept[part] = (np.asarray(x), np.asarray(y))
        x, y = kept[part]
        return (x, y) if n is None else (x[:n], y[:n])

    def drawn_split(self, part: str) -> tuple:
        """A split for a spec without data: inputs drawn from the input description (``Input.sample``)
        and uniform targets, as many as the trajectory's two passes need (or 512 test examples)."""
        from twinbench.fixtures import tolerances as T

        n = (T.TRAJECTORY_PASS_BATCHES + 1) * (self.train_batch or 64) if part == "train" else 512
        seed = {"train": 0, "test": 1}[part]
        y = np.random.RandomState(seed + 100).randint(0, max(self.target.classes, 2), size=n)
        return self.input.sample(n, seed), y.astype(self.target.dtype)


_DATA: dict = {}  # {network: {part: (inputs, targets)}}, as ``NetworkSpec.split`` loaded them

# The literals a user's pair may leave to ``--record-literals``: what its torch twin shows them to be.
STRUCTURE = ("output_shape", "param_layers", "canonical_weights", "init_laws", "param_counts", "total_params",
             "non_trainable_params", "stochastic_ops")


def from_literals(name: str, *, input: Input, target: Target, builders: dict, data: Callable, **fields) -> NetworkSpec:
    """A reference network's spec: every literal fixtures/expected.py and fixtures/tolerances.py keep
    under its name, gathered here once; ``fields`` add what is not keyed by name."""
    from twinbench.fixtures import tolerances as T

    literals = dict(
        output_shape=E.OUTPUT_SHAPES[name], param_layers=E.PARAM_LAYERS[name],
        canonical_weights=E.CANONICAL_WEIGHTS[name], init_laws=E.INIT_LAWS[name], param_counts=E.PARAM_COUNTS[name],
        total_params=E.TOTAL_PARAMS[name], non_trainable_params=E.NON_TRAINABLE_PARAMS[name],
        optional_layers=E.OPTIONAL_LAYERS.get(name, ()),
        fused_layers={layer: fused for (net, layer), fused in E.FUSED_LAYERS.items() if net == name},
        stochastic_ops=E.STOCHASTIC_OPS[name], flattened_from=E.FLATTENED_FROM[name],
        train_batch=E.TRAIN_BATCH[name], steps_per_epoch=E.STEPS_PER_EPOCH[name], last_batch=E.LAST_BATCH[name],
        budget_epochs=E.BUDGET_EPOCHS[name], lr_schedule=E.LR_SCHEDULE[name], optimizer=E.OPTIMIZER[name],
        gate_permille=E.GATE_PERMILLE[name], agreement_points=E.AGREEMENT_POINTS[name],
        agreement_epochs=E.AGREEMENT_EPOCHS[name], flops_per_sample=E.FLOPS_PER_SAMPLE[name],
        confident_head_scale=T.CONFIDENT_HEAD_SCALE[name], trajectory_window=T.TRAJECTORY_WINDOW[name],
        trajectory_exact_steps=T.TRAJECTORY_EXACT_STEPS[name],
        trajectory_weight_rtol_exact=T.TRAJECTORY_WEIGHT_RTOL_EXACT[name])
    return NetworkSpec(name=name, input=input, target=target, builders=builders, data=data, **(literals | fields))


_SPECS: dict = {}
_SOURCES: dict = {}  # {name: the --network PATH:NAME it was loaded from}


def register(spec: NetworkSpec, source: str | None = None) -> NetworkSpec:
    """Make ``spec`` known by its name (a user's own pair); a second spec of a name is refused.
    ``source``: the ``--network`` value that loads it again in a fresh process (a repro script)."""
    if not isinstance(spec, NetworkSpec):
        raise SpecError(f"{spec!r} is not a NetworkSpec; build one with twinbench.NetworkSpec(...)")
    known = _SPECS.get(spec.name)
    if known is not None and known is not spec:
        raise SpecError(f"a network named {spec.name!r} is already registered; give the spec another name")
    _SPECS[spec.name] = spec
    if source is not None:
        _SOURCES[spec.name] = source
    return spec


def reregister(spec: NetworkSpec) -> NetworkSpec:
    """Put ``spec`` in place of the registered spec of its name (its literals filled in)."""
    if spec.name not in _SPECS:
        raise SpecError(f"no network named {spec.name!r} is registered")
    _SPECS[spec.name] = spec
    return spec


def source(name: str) -> str | None:
    """The ``--network`` value a registered pair was loaded from (None for the references)."""
    return _SOURCES.get(name)


def get(name: str) -> NetworkSpec:
    """The spec of the network ``name``: a reference network's is loaded from its module."""
    if name not in _SPECS and name in E.NETWORKS:
        register(importlib.import_module(f"twinbench.impls.networks.{name}").SPEC)
    if name not in _SPECS:
        raise SpecError(f"unknown network {name!r}; use one of {', '.join(names())}")
    return _SPECS[name]


def names() -> tuple:
    """The reference networks, then every network registered, in order."""
    return tuple(E.NETWORKS) + tuple(n for n in _SPECS if n not in E.NETWORKS)


def references() -> list:
    """The reference networks' specs, in fixtures/expected.py NETWORKS order."""
    return [get(n) for n in E.NETWORKS]
