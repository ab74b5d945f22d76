"""The plug-in contract: --impl NAME=PATH:FACTORY gives a verdict, and bad values give one clear
usage error before any test runs."""

import os
import re
import subprocess
import sys

import pytest

from impls import registry

pytestmark = pytest.mark.selftest

SAMPLES = "suites/plugin_samples/bad_factories.py"


@pytest.mark.parametrize("value, expected", [
    ("cnn=impls.torch_mnist_cnn:module", "unknown network NAME 'cnn'"),
    ("mnist_cnn", "is not of the form"),
    ("mnist_cnn=no/such/file.py:factory", "file no/such/file.py not found"),
    ("mnist_cnn=no_such_module_xyz:factory", "cannot import module 'no_such_module_xyz'"),
    ("mnist_cnn=impls.torch_mnist_cnn:nope", "has no factory named 'nope'"),
    (f"mnist_cnn={SAMPLES}:not_callable", "not a zero-argument callable"),
    (f"mnist_cnn={SAMPLES}:raises", "raised RuntimeError: boom in factory"),
    (f"mnist_cnn={SAMPLES}:wrong_type", "return a torch.nn.Module, a keras.Model or a dict recipe"),
    (f"mnist_cnn={SAMPLES}:no_model", "returned a dict without 'model'"),
], ids=["unknown-name", "no-factory-part", "missing-file", "missing-module", "missing-factory",
        "not-callable", "factory-raises", "wrong-return-type", "dict-without-model"])
def test_bad_impl_value_is_a_usage_error(value, expected):
    with pytest.raises(registry.ImplUsageError) as err:
        registry.parse_impl(value)
    assert expected in str(err.value), str(err.value)


def _pytest(*args):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("TWINBENCH_IMPL", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
                          capture_output=True, text=True, env=env, timeout=600)


def test_bad_impl_stops_before_any_test():
    proc = _pytest(f"--impl=mnist_cnn={SAMPLES}:raises", "suites/test_parameters.py")
    assert proc.returncode == 4, f"exit {proc.returncode}, expected 4 (usage error)\n{proc.stdout}\n{proc.stderr}"
    assert "--impl: factory raises in" in proc.stderr and "boom in factory" in proc.stderr, proc.stderr
    assert "passed" not in proc.stdout


def test_impl_verdicts_end_to_end():
    """Seed 000's PyTorch model is rejected with messages that name the layer; a correct twin
    passes; with --impl nothing else is checked."""
    proc = _pytest("--impl", "tweet_fasttext=impls/known_bad/seed000_torch_fasttext.py:factory",
                   "--impl", "mnist_cnn=impls.torch_mnist_cnn:sequential",
                   "-m", "shapes or parameters", "-p", "no:randomly")
    out = proc.stdout
    assert proc.returncode == 1, f"exit {proc.returncode}, expected 1 (rejected)\n{out[-3000:]}"
    assert "layer avgpool (AvgPool1d, reference pool): output shape (7, 42, 1), expected (7, 50)" in out, out[-5000:]
    assert "forward pass at batch 7 raised: forward raised RuntimeError: shape '[32, 42]' is invalid" in out, out[-5000:]
    assert "layer fc (Linear, reference fc): 43 parameters, expected 51" in out, out[-5000:]
    assert "1,000,043 parameters in all, expected 1,000,051" in out, out[-5000:]
    assert re.search(r"candidate-torch-mnist_cnn-torch_mnist_cnn.sequential +conforms", out), out[-5000:]
    assert re.search(r"candidate-torch-tweet_fasttext-seed000_torch_fasttext.factory +REJECTED", out), out[-5000:]
    assert "torch-mnist_cnn-module" not in out.split("conformance matrix")[-1], "references ran in --impl mode"
