"""The cross-framework conversion command: torch checkpoint -> Keras .weights.h5 -> torch, with
forward parity asserted by the command and the round trip bit-identical."""

import numpy as np
import pytest

from twinbench.fixtures import expected as E
from twinbench.impls import convert, registry

pytestmark = pytest.mark.equivalence


@pytest.mark.parametrize("network", E.NETWORKS)
def test_convert_torch_keras_torch_roundtrip(network, tmp_path):
    start = registry.build(registry.reference("torch", network), seed=5)
    original = start.get_weights()
    pt = start.save(tmp_path / "start")
    diff = convert.convert("torch2keras", network, pt, str(tmp_path / "k.weights.h5"))
    assert diff <= 1e-5, f"torch2keras parity {diff}"
    back = str(tmp_path / "back.pt")
    convert.convert("keras2torch", network, str(tmp_path / "k.weights.h5"), back)
    again = registry.build(registry.reference("torch", network), seed=6)
    again.load(back)
    for name, value in again.get_weights().items():
        assert np.array_equal(value, original[name]), f"{network}: {name} changed in torch -> keras -> torch"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back.pt", "k.weights.h5", "start.pt"], \
        f"left behind: {sorted(p.name for p in tmp_path.iterdir())}"


@pytest.mark.parametrize("args, message", [
    (("torch2keras", "mnist_cnn", "missing.pt", "out.weights.h5"), "input checkpoint missing.pt not found"),
    (("torch2keras", "mnist_cnn", "HERE", "out.h5"), "must end in .weights.h5"),
    (("sideways", "mnist_cnn", "HERE", "out.pt"), "unknown direction"),
    (("torch2keras", "tweet_fasttext", "HERE", "out.weights.h5"), "is not a tweet_fasttext checkpoint"),
], ids=["missing-input", "wrong-suffix", "bad-direction", "wrong-network"])
def test_convert_bad_input(args, message, tmp_path):
    pt = registry.build(registry.reference("torch", "mnist_cnn")).save(tmp_path / "mnist")
    args = tuple(pt if a == "HERE" else (str(tmp_path / a) if a.startswith("out") else a) for a in args)
    with pytest.raises(convert.ConversionError) as err:
        convert.convert(*args)
    assert message in str(err.value), str(err.value)
    assert not any(p.name.startswith("out") or p.name.startswith(".out") for p in tmp_path.iterdir())


def test_flattened_dense_kernel_rows_follow_both_layouts():
    """fc1 reads features flattened (C, H, W) in torch and (H, W, C) canonically: torch's
    weight[o, (c*H + h)*W + w] is the canonical kernel[(h*W + w)*C + c, o], both ways, for every
    index (an index oracle, independent of how the adapter permutes)."""
    from twinbench.impls import torch_adapter

    h, w, c, out = 3, 4, 5, 2
    weight = np.arange(out * c * h * w, dtype=np.float32).reshape(out, c * h * w)
    kernel = torch_adapter._to_canonical("dense", "weight", weight, (h, w, c))
    assert kernel.shape == (h * w * c, out)
    for o, ci, hi, wi in np.ndindex(out, c, h, w):
        assert kernel[(hi * w + wi) * c + ci, o] == weight[o, (ci * h + hi) * w + wi], (o, ci, hi, wi)
    back = torch_adapter._from_canonical("dense", "weight", kernel, (h, w, c))
    assert back.flags.c_contiguous and np.array_equal(back, weight)
