"""Weight mapping by layer kind (impls/layer_maps.py): bit-exact round trips both ways, and twins.

A map is proven by what the mapped layers compute: a torch layer's tensors mapped onto the Keras
layer of the same kind give the same outputs, in training-free (eval) mode, within the forward
tolerance. Random values stand in for trained ones; a permutation that is wrong by one gate block
or one transposition moves the outputs by O(1).
"""

from __future__ import annotations

import numpy as np
import pytest

from twinbench.fixtures import tolerances as T
from twinbench.impls import frameworks, layer_maps
from twinbench.impls.adapter import layer_kind

torch = frameworks.torch
H, IN, T_STEPS, N = 5, 3, 7, 4


def _torch_layers():
    """(kind, torch layer, input as numpy in the canonical layout) for every kind mapped."""
    return [
        ("conv", torch.nn.Conv2d(IN, H, 3), (N, 6, 6, IN)),
        ("dense", torch.nn.Linear(IN, H), (N, IN)),
        ("embedding", torch.nn.Embedding(11, H), (N, T_STEPS)),
        ("batchnorm", torch.nn.BatchNorm2d(IN), (N, 4, 4, IN)),
        ("batchnorm", torch.nn.BatchNorm1d(H), (N, H)),
        ("gru", torch.nn.GRU(IN, H, batch_first=True), (N, T_STEPS, IN)),
        ("lstm", torch.nn.LSTM(IN, H, batch_first=True), (N, T_STEPS, IN)),
    ]


def _randomise(layer, rng):
    """Every parameter and float buffer drawn afresh (running variances positive)."""
    with torch.no_grad():
        for name, t in list(layer.named_parameters()) + list(layer.named_buffers()):
            if t.dtype.is_floating_point:
                value = rng.standard_normal(tuple(t.shape)).astype(np.float32)
                t.copy_(torch.from_numpy(np.abs(value) + 0.5 if "var" in name else value))


def _torch_tensors(layer) -> dict:
    tensors = dict(layer.named_parameters(recurse=False)) | dict(layer.named_buffers(recurse=False))
    return {k: v.detach().numpy().copy() for k, v in tensors.items()}


def _torch_forward(kind, layer, x):
    layer.eval()
    with torch.no_grad():
        if kind == "embedding":
            return layer(torch.from_numpy(x)).numpy()
        t = torch.from_numpy(x)
        if x.ndim == 4:  # canonical NHWC -> NCHW and back
            return layer(t.permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
        out = layer(t)
        return (out[0] if isinstance(out, tuple) else out).numpy()


def _input(kind, shape, rng):
    if kind == "embedding":
        return rng.integers(0, 11, shape)
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("index", range(7), ids=[f"{k}-{type(m).__name__}" for k, m, _ in _torch_layers()])
def test_torch_round_trip_is_bit_exact(index):
    """torch -> canonical -> torch returns every tensor bit for bit (an LSTM's bias split aside:
    its sum, the only thing a gate reads, comes back bit for bit), and canonical -> torch ->
    canonical returns every canonical tensor bit for bit."""
    kind, layer, _ = _torch_layers()[index]
    _randomise(layer, np.random.default_rng(index))
    tensors = _torch_tensors(layer)
    canonical = layer_maps.torch_to_canonical(kind, tensors)
    back = layer_maps.canonical_to_torch(kind, canonical)
    if kind == "lstm":
        assert np.array_equal(back["bias_ih_l0"] + back["bias_hh_l0"],
                              (torch.from_numpy(tensors["bias_ih_l0"]) + torch.from_numpy(tensors["bias_hh_l0"])).numpy())
        tensors = {k: v for k, v in tensors.items() if not k.startswith("bias")}
    tensors.pop("num_batches_tracked", None)
    for name, value in tensors.items():
        assert np.array_equal(back[name], value), f"{kind}: {name} changed in the round trip"
    again = layer_maps.torch_to_canonical(kind, back)
    assert set(again) == set(canonical)
    for name in canonical:
        assert np.array_equal(again[name], canonical[name]), f"{kind}: canonical {name} changed in the round trip"


def _keras_twin(kind, torch_layer, shape):
    keras = frameworks.keras
    if kind == "conv":
        layer = keras.layers.Conv2D(H, 3)
    elif kind == "dense":
        layer = keras.layers.Dense(H)
    elif kind == "embedding":
        layer = keras.layers.Embedding(11, H)
    elif kind == "batchnorm":
        layer = keras.layers.BatchNormalization(epsilon=torch_layer.eps)
    elif kind == "gru":
        layer = keras.layers.GRU(H, return_sequences=True)
    else:
        layer = keras.layers.LSTM(H, return_sequences=True)
    layer.build(shape)
    return layer


def _short(var) -> str:
    return var.path.rsplit("/", 1)[-1]


@pytest.mark.frameworks("keras")
@pytest.mark.parametrize("index", range(7), ids=[f"{k}-{type(m).__name__}" for k, m, _ in _torch_layers()])
def test_a_mapped_torch_layer_and_its_keras_twin_compute_the_same(index):
    """The torch layer's tensors mapped through the canonical layout onto the Keras layer of the
    same kind: the same outputs within the forward tolerance (BatchNorm in inference, on its
    running statistics), and Keras -> canonical -> Keras bit for bit."""
    kind, layer, shape = _torch_layers()[index]
    rng = np.random.default_rng(100 + index)
    _randomise(layer, rng)
    twin = _keras_twin(kind, layer, shape)
    assert layer_kind(type(layer).__name__) == kind == layer_kind(type(twin).__name__)
    weights = layer_maps.canonical_to_keras(kind, layer_maps.torch_to_canonical(kind, _torch_tensors(layer)))
    by_name = {_short(v): v for v in twin.weights}
    assert set(by_name) == set(weights), (set(by_name), set(weights))
    for name, value in weights.items():
        assert tuple(by_name[name].shape) == value.shape, (name, by_name[name].shape, value.shape)
        by_name[name].assign(value)
    x = _input(kind, shape, rng)
    want = _torch_forward(kind, layer, x)
    got = np.asarray(twin(x, training=False))
    assert got.shape == want.shape
    assert np.all(np.abs(got - want) <= T.FORWARD_ATOL + T.FORWARD_RTOL * np.abs(want)), \
        f"{kind}: max |diff| {np.abs(got - want).max():.3g}"
    back = layer_maps.canonical_to_keras(kind, layer_maps.keras_to_canonical(
        kind, {n: v.numpy() for n, v in by_name.items()}))
    for name, var in by_name.items():
        assert np.array_equal(back[name], var.numpy()), f"{kind}: keras {name} changed in the round trip"


def test_gate_order_matters():
    """The GRU map is not the identity on gates: torch's r and z blocks trade places, so a map
    that forgot the reorder would fail the twin test above; the LSTM's i, f, g, o stay put."""
    w = np.repeat(np.arange(3, dtype=np.float32), 2)[:, None] * np.ones((1, 4), np.float32)  # H=2: rows r r z z n n
    canonical = layer_maps.torch_to_canonical("gru", {"weight_ih_l0": w, "weight_hh_l0": np.zeros((6, 2), np.float32)})
    assert canonical["kernel"][0].tolist() == [1, 1, 0, 0, 2, 2]   # z z r r h h
    w4 = np.repeat(np.arange(4, dtype=np.float32), 2)[:, None] * np.ones((1, 3), np.float32)
    lstm = layer_maps.torch_to_canonical("lstm", {"weight_ih_l0": w4, "weight_hh_l0": np.zeros((8, 2), np.float32)})
    assert lstm["kernel"][0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_layers_without_a_twin_are_refused_with_the_tensor_named():
    stacked = _torch_tensors(torch.nn.GRU(IN, H, num_layers=2))
    with pytest.raises(layer_maps.LayerMapError, match="weight_ih_l1.*num_layers=1"):
        layer_maps.torch_to_canonical("gru", stacked)
    both = _torch_tensors(torch.nn.LSTM(IN, H, bidirectional=True))
    with pytest.raises(layer_maps.LayerMapError, match="_reverse"):
        layer_maps.torch_to_canonical("lstm", both)
    with pytest.raises(layer_maps.LayerMapError, match="reset_after=True"):
        layer_maps.keras_to_canonical("gru", {"kernel": np.zeros((3, 15)), "recurrent_kernel": np.zeros((5, 15)),
                                              "bias": np.zeros(15)})
    with pytest.raises(layer_maps.LayerMapError, match="layernorm.*kinds mapped"):
        layer_maps.torch_to_canonical("layernorm", {})
    with pytest.raises(layer_maps.LayerMapError, match="torch dense tensor.*lora_A"):
        layer_maps.torch_to_canonical("dense", {"weight": np.zeros((2, 3)), "lora_A": np.zeros((1, 3))})
    with pytest.raises(layer_maps.LayerMapError, match="weight_hr_l0.*proj_size=0"):
        layer_maps.torch_to_canonical("lstm", _torch_tensors(torch.nn.LSTM(IN, H, proj_size=2)))
    with pytest.raises(layer_maps.LayerMapError, match="track_running_stats=True"):
        layer_maps.torch_to_canonical("batchnorm", _torch_tensors(torch.nn.BatchNorm1d(H, track_running_stats=False)))
    with pytest.raises(layer_maps.LayerMapError, match="torch conv layer without weight"):
        layer_maps.torch_to_canonical("conv", {"bias": np.zeros(3)})
    with pytest.raises(layer_maps.LayerMapError, match="keras gru layer without recurrent_kernel"):
        layer_maps.keras_to_canonical("gru", {"kernel": np.zeros((3, 15))})


def test_keras_batch_moments_are_as_precise_as_torchs():
    """frameworks.precise_batch_moments (set by set_determinism, as under pytest): a Keras
    BatchNormalization in training mode normalises with batch moments accumulated in float64, as
    torch's BatchNorm does. Without it TensorFlow's float32 reduction puts the outputs ~1e-4 from
    exact on activations with a large mean (the reason it exists: measured 3.9e-4 on mnist_bn's bn1)."""
    keras = pytest.importorskip("keras")
    tf = frameworks.tf

    assert frameworks.precise_batch_moments() and frameworks.numeric_environment()["keras_precise_moments"]
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((128, 26, 26, 8)) * 0.25 + 3.0).astype(np.float32)  # mean 12 standard deviations away
    x64 = x.astype(np.float64)
    exact = (x64 - x64.mean((0, 1, 2))) / np.sqrt(x64.var((0, 1, 2)) + 1e-5)
    layer = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
    keras_err = np.abs(np.asarray(layer(x, training=True)) - exact).max()
    bn = torch.nn.BatchNorm2d(8, eps=1e-5).train()
    with torch.no_grad():
        torch_err = np.abs(bn(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy() - exact).max()
    assert keras_err <= max(2 * torch_err, 1e-5), (keras_err, torch_err)
    mean32, _ = frameworks._PRECISE_MOMENTS[0](tf.constant(x), [0, 1, 2], False)  # TensorFlow's own float32 moments
    precise, _ = keras.ops.moments(tf.constant(x), axes=[0, 1, 2])
    assert np.abs(mean32.numpy() - x64.mean((0, 1, 2))).max() > 10 * np.abs(
        np.asarray(precise) - x64.mean((0, 1, 2))).max()
