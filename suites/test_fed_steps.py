"""A Keras twin's training-mode steps with shared masks (impls/keras_adapter.py): after
FED_AFTER eager steps that drew alike, one compiled step takes the masks as inputs. It must draw
the same masks, record the same ops and compute what the eager step computes. A twin whose draws
change between calls, whose traced call draws differently or inside a conditional, must stay
eager; one whose draws change after compiling must go eager at the next recheck."""

import numpy as np
import pytest

from twinbench.impls import frameworks, randomness, registry

pytestmark = [pytest.mark.selftest, pytest.mark.frameworks("keras")]

STEPS = 6
FED_AFTER = 2  # steps 0-1 eager, then compiled
RECHECK = 3    # every third compiled call runs eagerly: step 4


@pytest.fixture(scope="module")
def data():
    from twinbench.fixtures import data as D

    return D.split("mnist_cnn", "train", 64 * 12)


def _keras(network="mnist_cnn"):
    twin = registry.build(registry.reference("keras", network), seed=1)
    twin.set_weights(registry.build(registry.reference("torch", network), seed=0).get_weights())
    return twin


def _run(twin, data, monkeypatch, fed_after, steps=STEPS, between=None):
    """``steps`` training-mode steps: per step the loss, the ops recorded, the gradients and the
    stream's next number. ``between(i)`` runs before step i."""
    from twinbench.impls import keras_adapter

    monkeypatch.setattr(keras_adapter, "FED_AFTER", fed_after)
    monkeypatch.setattr(keras_adapter, "RECHECK_EVERY", RECHECK)
    x, y = data
    rows = []
    for i in range(steps):
        if between is not None:
            between(i)
        stream = randomness.Stream(randomness.step_seed(11, i))
        loss, grads = twin.loss_and_grads(x[64 * i:64 * (i + 1)], y[64 * i:64 * (i + 1)], training=True, stream=stream)
        rows.append((loss, list(stream.ops), grads, stream.rng.random_sample()))  # the last: where the stream stands
        twin.optimizer_step(grads)
    return rows


def _fed(twin):
    """The twin's compiled steps still in use."""
    return [st.step for st in twin.__dict__.get("_fed", {}).values() if st.step is not None and not st.eager]


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
    keras = frameworks.keras

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
    tf = frameworks.tf

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


def test_draws_that_change_after_compiling_go_eager_at_the_next_recheck(data, monkeypatch):
    """A layer whose Python state turns its dropout off after the step was compiled: the compiled
    step would keep dropping; the next recheck (an eager step) sees one draw fewer, and every step
    from it on is eager and records one op."""
    state = {"drop": True}
    twin = _keras()
    _wrap_call(_dropout_layer(twin), lambda original, inputs, training: original(inputs, training=training)
               if state["drop"] else inputs)
    rows = _run(twin, data, monkeypatch, FED_AFTER, steps=12, between=lambda i: state.update(drop=i < 4))
    ops = [len(r[1]) for r in rows]
    assert ops[:4] == [2] * 4 and not _fed(twin), ops
    switched = ops.index(1)
    assert switched <= 4 + RECHECK and ops[switched:] == [1] * (12 - switched), ops


def test_a_draw_inside_a_conditional_stays_eager(data, monkeypatch):
    """A dropout under keras.ops.cond: eagerly it ran every time, but a trace would take its draw
    as unconditional; the trace is refused and the twin trains exactly as eagerly."""
    keras = frameworks.keras

    runs = []
    for fed_after in (10**9, FED_AFTER):
        twin = _keras()
        flag = keras.Variable(1.0, trainable=False)
        _wrap_call(_dropout_layer(twin), lambda original, inputs, training, flag=flag: keras.ops.cond(
            flag > 0, lambda: original(inputs, training=training), lambda: inputs))
        runs.append(_run(twin, data, monkeypatch, fed_after))
        assert not _fed(twin)
    assert [(r[0], r[1]) for r in runs[0]] == [(r[0], r[1]) for r in runs[1]]


def test_training_mode_without_a_stream_keeps_keras_own_dropout(data, monkeypatch):
    from twinbench.impls import keras_adapter

    monkeypatch.setattr(keras_adapter, "FED_AFTER", FED_AFTER)
    twin, (x, y) = _keras(), data
    losses = {twin.loss_and_grads(x[:64], y[:64], training=True)[0] for _ in range(FED_AFTER + 2)}
    assert len(losses) > 1 and not _fed(twin)  # Keras's own masks: a new one each call


def test_a_loaded_whole_model_is_not_run_by_the_replaced_models_compiled_step(data, monkeypatch, tmp_path):
    twin = _keras()
    _run(twin, data, monkeypatch, FED_AFTER)
    assert _fed(twin)
    path = twin.save(tmp_path / "m", whole_model=True)
    twin.optimizer_step({k: np.ones_like(v) for k, v in twin.get_weights().items()})  # the old model moves on
    twin.load(path)
    assert not _fed(twin)
    x, y = data
    stream = lambda: randomness.Stream(3)  # noqa: E731
    got = twin.loss_and_grads(x[:64], y[:64], training=True, stream=stream())[0]
    fresh = _keras()
    fresh.load(path)
    assert got == fresh.loss_and_grads(x[:64], y[:64], training=True, stream=stream())[0]
