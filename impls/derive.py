"""A pair's structural literals, read off its torch twin, for a spec that does not state them.

A user's ``NetworkSpec`` may leave out what the suite holds each twin to, layer by layer
(``networks.STRUCTURE``: the output shape, the parameterised layers with their kinds and shapes,
the canonical weights, their initialisation laws, the parameter counts, the stochastic ops).
``derive`` reads them off the pair's first torch builder, through the same adapter every check
uses, so that every check can run and hold the Keras twin to the torch twin's structure.
``pytest --network PATH:NAME --record-literals FILE`` records them beside the golden outputs;
later runs hold both twins to the file (registry.load_network), so a change to either twin's
structure is caught. Until they are recorded the verdict is INCOMPLETE (no recorded literals).

The initialisation laws are fitted on fresh builds (seeds from ``FIT_FIRST_SEED``, apart from the
seeds the initialisation check draws): a symmetric uniform law when the values' excess kurtosis is
near the uniform's -1.2, a normal law otherwise; a bound or standard deviation within 2% of a
well-known initialiser's for the layer's fan-in is taken exactly. A weight whose values are one
constant (zeros, ones) gets no law: the check judges laws, and a constant is no draw from one.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from twinbench.fixtures import tolerances as T
from twinbench.impls import networks

PROBE_BATCH = 3  # the batch of the probe passes: its axis is written "B" in the literals
FIT_FIRST_SEED = T.INIT_FIRST_SEED + 50_000
FIT_VALUES = 4096  # values per weight the laws are fitted on (or T.INIT_MAX_BUILDS builds)
SNAP = 0.02  # a fitted bound within 2% of a well-known initialiser's is that initialiser's


def derive(name: str) -> networks.NetworkSpec:
    """The registered spec ``name`` with every STRUCTURE literal it leaves out read off its torch
    twin, re-registered; ``derived_literals`` names them."""
    from twinbench.impls import registry

    spec = networks.get(name)
    missing = spec.unstated()
    if not missing:
        return spec
    blank = dict(param_layers=(), canonical_weights={}, init_laws={}, param_counts={}, total_params=0,
                 non_trainable_params=0, stochastic_ops=(), output_shape=())
    # what the adapters read while the literals are read off the twin; no law (stated ones may name
    # weights not known yet)
    staged = dataclasses.replace(spec, **({k: blank[k] for k in missing} | {"init_laws": {}}))
    try:
        torch_ref = registry.reference("torch", name)
        x = spec.split("test", PROBE_BATCH)[0] if spec.data is not None else spec.input.sample(PROBE_BATCH, 0)
        networks.reregister(staged)
        found = _layers(registry.build(torch_ref, seed=0), x)
        if "param_layers" in missing:  # the weights are named after the layers
            staged = networks.reregister(dataclasses.replace(staged, param_layers=found["param_layers"]))
        found.update(_weights(registry.build(torch_ref, seed=0), x))
        if "init_laws" in missing:
            shapes = found["canonical_weights"] if "canonical_weights" in missing else spec.canonical_weights
            networks.reregister(dataclasses.replace(staged, canonical_weights=shapes))
            found["init_laws"] = fit_laws(lambda seed: registry.build(torch_ref, seed=seed).get_weights(), shapes)
        derived = dataclasses.replace(spec, **{k: found[k] for k in missing}, derived_literals=missing)
    except BaseException:
        networks.reregister(spec)
        raise
    return networks.reregister(derived)


def _batched(shape) -> tuple | None:
    if shape is None:
        return None
    shape = tuple(int(d) for d in shape)
    if not shape or shape[0] != PROBE_BATCH:
        raise networks.SpecError(f"a layer's shape {shape} has no batch axis of {PROBE_BATCH} first: state the "
                                 "spec's param_layers and output_shape yourself")
    return ("B", *shape[1:])


def _layers(twin, x) -> dict:
    """The output shape and the parameterised layers (name, kind, input and output shapes)."""
    out = twin.forward(x)
    records = twin.trace(x).param_layers()
    return {"output_shape": _batched(out.shape),
            "param_layers": tuple((r.name, r.kind, _batched(r.in_shape), _batched(r.out_shape)) for r in records)}


def _weights(twin, x) -> dict:
    """Canonical weights, parameter counts and the stochastic ops of a training-mode pass."""
    from twinbench.impls import randomness

    weights = twin.get_weights()
    layers = twin.param_layers()
    counts = {ref: layer.trainable + layer.non_trainable for layer, ref in twin.param_layer_map()}
    stream = randomness.Stream(T.TRAIN_MODE_STREAM_SEED)
    twin.forward(x, training=True, stream=stream)
    return {"canonical_weights": {k: tuple(int(d) for d in np.shape(v)) for k, v in weights.items()},
            "param_counts": counts,
            "total_params": sum(layer.trainable + layer.non_trainable for layer in layers),
            "non_trainable_params": sum(layer.non_trainable for layer in layers),
            "stochastic_ops": tuple(op.signature() for op in stream.ops)}


def fit_laws(build_weights, shapes: dict) -> dict:
    """{canonical weight: law} fitted on fresh builds' values; a weight that every build sets to
    one value (a BatchNorm's gamma, a zero bias) gets ("constant", value)."""
    pooled = {k: [] for k in shapes}
    if not pooled:
        return {}
    builds = 0
    while builds < T.INIT_MAX_BUILDS and min(sum(map(len, v)) for v in pooled.values()) < FIT_VALUES:
        weights = build_weights(FIT_FIRST_SEED + builds)
        builds += 1
        for k in shapes:
            pooled[k].append(np.asarray(weights[k], np.float64).ravel())
    laws = {}
    for k, parts in pooled.items():
        v = np.concatenate(parts)
        if v.size and v.min() != v.max():
            laws[k] = law_of(v, _fan_in(k, shapes))
        elif v.size:
            laws[k] = ("constant", float(v[0]))
    return laws


def _fan_in(name: str, shapes: dict) -> int | None:
    """The fan-in of the layer a weight belongs to: its kernel's (kh, kw, in, out) or (in, out)."""
    kernel = shapes.get(name.rsplit(".", 1)[0] + ".kernel")
    return int(np.prod(kernel[:-1])) if kernel is not None and len(kernel) >= 2 else None


def law_of(values: np.ndarray, fan_in: int | None) -> tuple:
    """("uniform", b) or ("normal", mean, std) for ``values``."""
    v = np.asarray(values, np.float64)
    n, std = v.size, float(v.std())
    kurtosis = float(np.mean((v - v.mean()) ** 4) / std ** 4) - 3.0 if std > 0 else 0.0
    known = [1 / math.sqrt(fan_in), math.sqrt(3 / fan_in), math.sqrt(6 / fan_in)] if fan_in else []
    if kurtosis < -0.6:  # uniform: -1.2; normal: 0
        bound = float(np.abs(v).max()) * (n + 1) / n
        near = [b for b in known if abs(b - bound) <= SNAP * b]
        return ("uniform", near[0] if near else float(f"{bound:.6g}"))
    mean = float(v.mean())
    if abs(mean) < 4 * std / math.sqrt(n):
        mean = 0.0
    near = [s for s in [1.0] + [b / math.sqrt(3) for b in known] if abs(s - std) <= SNAP * s]
    return ("normal", mean, near[0] if near else float(f"{std:.6g}"))


def jsonable(spec: networks.NetworkSpec, names) -> dict:
    """The literals ``names`` of ``spec`` as JSON values (tuples as lists)."""
    return {name: getattr(spec, name) for name in names}


def from_json(values: dict) -> dict:
    """Recorded literals back as the spec holds them: every list a tuple, at any depth."""
    def tuples(obj):
        if isinstance(obj, list):
            return tuple(tuples(o) for o in obj)
        if isinstance(obj, dict):
            return {k: tuples(v) for k, v in obj.items()}
        return obj

    return {k: tuples(v) for k, v in values.items() if k in networks.STRUCTURE}
