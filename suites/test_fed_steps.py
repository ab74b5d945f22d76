"""A Keras twin's training-mode steps with shared masks (impls/keras_adapter.py): after
FED_AFTER eager steps that drew alike, one compiled step takes the masks as inputs. It must draw
the same masks, record the same ops and compute what the eager step computes, and a twin whose
draws change between calls, or whose traced call draws differently, must stay eager."""

import numpy as np
import pytest

from impls import randomness, registry

pytestmark = [pytest.mark.selftest, pytest.mark.frameworks("keras")]

STEPS = 6
FED_AFTER = 2  # steps 0-1 eager, 2-5 compiled


@pytest.fixture(scope="module")
def data():
    from fixtures import data as D

    return D.split("mnist_cnn", "train", 64 * STEPS)


def _keras(network="mnist_cnn"):
    twin = registry.build(registry.reference("keras", network), seed=1)
    twin.set_weights(registry.build(registry.reference("torch", network), seed=0).get_weights())
    return twin


def _run(twin, data, monkeypatch, fed_after):
    """STEPS training-mode steps: per step the loss, the ops recorded and the gradients."""
    from impls import keras_adapter

    monkeypatch.setattr(keras_adapter, "FED_AFTER", fed_after)
    x, y = data
    rows = []
    for i in range(STEPS):
        stream = randomness.Stream(randomness.step_seed(11, i))
        loss, grads = twin.loss_and_grads(x[64 * i:64 * (i + 1)], y[64 * i:64 * (i + 1)], training=True, stream=stream)
        rows.append((loss, list(stream.ops), grads, stream.rng.random_sample()))  # the last: where the stream stands
        twin.optimizer_step(grads)
    return rows


def _fed(twin):
    from impls import keras_adapter

    return [v for v in twin.__dict__.get("_fed_steps", {}).values() if isinstance(v, keras_adapter._FedStep)]


def test_compiled_steps_draw_the_same_masks_and_compute_what_eager_steps_compute(data, monkeypatch):
    eager = _run(_keras(), data, monkeypatch, fed_after=10**9)
    twin = _keras()
    fed = _run(twin, data, monkeypatch, fed_after=FED_AFTER)
    assert [f.traced for f in _fed(twin)] == [True], "the steps after FED_AFTER did not run compiled"
    for i, ((la, ops_a, ga, next_a), (lb, ops_b, gb, next_b)) in enumerate(zip(eager, fed)):
        assert ops_a == ops_b and len(ops_a) == 2, f"step {i}: ops {ops_b} vs eager {ops_a}"
        assert next_a == next_b, f"step {i}: the compiled step drew a different amount from the stream"
        if i < FED_AFTER:
            assert la == lb, f"step {i} is eager in both runs: {lb} vs {la}"
        # compiled kernels round differently from eager ones (~1e-8 of a weight per step); a mask
        # fed wrongly (another mask, another order, none) moves the loss by >1e-2
        assert abs(la - lb) <= 1e-5 * abs(la), f"step {i}: loss {lb} vs eager {la}"
        for name in ga:
            scale = np.abs(ga[name]).max()
            assert np.abs(ga[name] - gb[name]).max() <= 1e-4 * scale, f"step {i}: gradient of {name}"


def _wrap_call(layer, call):
    """Give one Keras layer instance a new ``call`` (the instance attribute wins)."""
    original = layer.call
    layer.call = lambda inputs, training=False, **kw: call(original, inputs, training)


def _dropout_layer(twin):
    import keras

    return [l for l in twin.model.layers if isinstance(l, keras.layers.Dropout)][-1]


def test_draws_that_change_between_calls_stay_eager(data, monkeypatch):
    """A dropout that draws on every other call never sees FED_AFTER alike calls in a row."""
    calls = [0]

    def every_other(original, inputs, training):
        calls[0] += 1
        return original(inputs, training=training) if calls[0] % 2 else inputs

    runs = []
    for fed_after in (10**9, FED_AFTER):
        twin, calls[0] = _keras(), 0
        _wrap_call(_dropout_layer(twin), every_other)
        runs.append(_run(twin, data, monkeypatch, fed_after))
        assert not _fed(twin)
    assert [(r[0], r[1]) for r in runs[0]] == [(r[0], r[1]) for r in runs[1]]


def test_a_traced_call_that_draws_differently_stays_eager(data, monkeypatch):
    """A layer that draws once eagerly and twice when traced: the trace is refused before any
    mask is drawn, and the twin trains exactly as it does eagerly."""
    import tensorflow as tf

    def twice_when_traced(original, inputs, training):
        out = original(inputs, training=training)
        return out if tf.executing_eagerly() else original(out, training=training)

    runs = []
    for fed_after in (10**9, FED_AFTER):
        twin = _keras()
        _wrap_call(_dropout_layer(twin), twice_when_traced)
        runs.append(_run(twin, data, monkeypatch, fed_after))
        assert not _fed(twin)
    assert [(r[0], r[1]) for r in runs[0]] == [(r[0], r[1]) for r in runs[1]]
