"""A network is a spec (impls/networks/): the checks read it, never a network's name, so a network
registered beside the references runs the same checks; a spec that cannot be used is refused with
the field named."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from twinbench.fixtures import expected as E
from twinbench.impls import networks, registry
from twinbench.suites import runstate


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "pair.py"


@pytest.fixture
def pair(monkeypatch):
    """The example pair's spec (examples/pair.py) registered for one test, as --network loads it,
    with a run state for the checks that read real batches."""
    monkeypatch.setattr(networks, "_SPECS", dict(networks._SPECS))
    monkeypatch.setattr(networks, "_SOURCES", dict(networks._SOURCES))
    monkeypatch.setattr(networks, "_DATA", dict(networks._DATA))
    spec = registry.load_network(f"{EXAMPLE}:SPEC")
    run = runstate.RunState([], [], refcache_mode="off")
    runstate.activate(run)
    yield spec
    runstate.deactivate(run)


def test_the_references_are_specs_in_the_literal_order():
    assert networks.names()[:len(E.NETWORKS)] == E.NETWORKS
    assert [s.name for s in networks.references()] == list(E.NETWORKS)
    assert [r.id for r in registry.REFERENCES][:2] == ["torch-mnist_cnn-module", "torch-mnist_cnn-sequential"]
    for name in E.NETWORKS:
        spec = networks.get(name)
        x, y = spec.split("test", 5)
        assert x.shape == spec.input.batch_shape(5) and x.dtype.kind == np.dtype(spec.input.dtype).kind
        assert y.shape == (5,) and y.dtype == spec.target.dtype


@pytest.mark.parametrize("change, named", [
    ({"input": networks.Input(shape=(3,), kind="audio")}, "input.kind 'audio'"),
    ({"input": networks.Input(shape=(42,), kind="tokens")}, "input.vocab"),
    ({"input": networks.Input(shape=(6,), kind="features")}, "input.draw_range"),
    ({"target": networks.Target(kind="regression", classes=1)}, "target.kind 'regression'"),
    ({"builders": {"jax": {}}}, "builders ['jax']"),
    ({"init_laws": {"nope.kernel": ("uniform", 1.0)}}, "init_laws names ['nope.kernel']"),
    ({"param_layers": (("ln", "layernorm", ("B", 6), ("B", 6)),)}, "param_layers of kind layernorm"),
])
def test_a_spec_that_cannot_be_used_is_refused_with_the_field_named(change, named, pair):
    with pytest.raises(networks.SpecError, match="network spec 'example_mlp': bad .*" + named.replace("[", r"\[")
                       .replace("]", r"\]")):
        dataclasses.replace(pair, **change)


def test_unknown_and_twice_registered_names_are_refused(pair):
    with pytest.raises(networks.SpecError, match="unknown network 'nope'; use one of mnist_cnn, tweet_fasttext, tweet_gru, mnist_bn, example_mlp"):
        networks.get("nope")
    with pytest.raises(networks.SpecError, match="already registered"):
        networks.register(dataclasses.replace(pair))
    with pytest.raises(networks.SpecError, match="is not a NetworkSpec"):
        networks.register({"name": "x"})


@pytest.mark.frameworks("keras")
def test_a_registered_network_runs_the_catalogues_checks(pair):
    """The example pair, registered: its references are its spec's builders, and the shape, count,
    weight-transfer and forward checks run on it unchanged. Its Keras twin conforms to its torch
    one; the variant with the tanh-approximated GELU is rejected by forward parity."""
    from twinbench.suites.checks import equivalence, parameters, shapes

    torch_ref, keras_ref = registry.reference("torch", "example_mlp"), registry.reference("keras", "example_mlp")
    assert (torch_ref.id, keras_ref.id) == ("torch-example_mlp-module", "keras-example_mlp-sequential")
    twin = registry.build(keras_ref, seed=1)
    for check in (parameters.check_param_count_per_layer, parameters.check_param_count_total,
                  parameters.check_all_trainable, equivalence.check_transfer_refuses_bad_shapes):
        check(twin)
    for batch in (1, 7):
        shapes.check_output_shape(twin, batch)
        shapes.check_layer_shapes(twin, batch)
    equivalence.check_weight_roundtrip(twin, torch_ref.id)
    for direction in ("into", "from"):
        got = equivalence.check_forward_parity(twin, torch_ref.id, direction)
        assert got["forward_max_abs_diff"] < 1e-5, got
    equivalence.check_forward_parity_hypothesis(twin, torch_ref.id)

    faulty = registry.build(registry.ImplSpec("candidate-keras-example_mlp-tanh", "example_mlp", "keras", "tanh",
                                              f"{EXAMPLE.parent / 'pair_faulty.py'}:keras_tanh_gelu", "candidate"),
                            seed=1)
    parameters.check_param_count_total(faulty)  # the same parameters: only what it computes differs
    with pytest.raises(AssertionError, match="outputs differ"):
        equivalence.check_forward_parity(faulty, torch_ref.id, "from")


def test_a_twin_of_an_unknown_network_is_refused():
    spec = registry.ImplSpec("torch-nope-module", "nope", "torch", "module", f"{EXAMPLE}:torch_pair", "candidate")
    with pytest.raises(networks.SpecError, match="unknown network 'nope'"):  # a usage error, not a CandidateError
        registry.build(spec)


def test_a_batchnorms_moving_statistics_are_state():
    """mnist_bn's spec: the moving means and variances are canonical weights (copied and compared)
    but not stepped ones (no gradient, no optimizer step); torch's summary counts them as buffers;
    the trajectory allows a moving variance torch's unbiased estimate, 1/(n-1) of its value, n the
    values per channel in the smallest training batch (the epoch's last, 96 images)."""
    from twinbench.suites import training

    spec = networks.get("mnist_bn")
    state = {f"{bn}.{w}" for bn in ("bn1", "bn2", "bn3") for w in ("moving_mean", "moving_variance")}
    assert set(spec.canonical_weights) - set(spec.stepped_weights) == state
    assert spec.state_size == 2 * (32 + 64 + 128) == spec.non_trainable_params
    assert training.state_allowance("mnist_bn", "bn3.moving_variance") == 1 / (96 - 1)
    assert training.state_allowance("mnist_bn", "bn1.moving_variance") == 1 / (96 * 26 * 26 - 1)
    assert training.state_allowance("mnist_bn", "bn3.moving_mean") == 0 == training.state_allowance("mnist_bn", "fc1.kernel")
    assert networks.get("mnist_cnn").stepped_weights == tuple(E.CANONICAL_WEIGHTS["mnist_cnn"])
