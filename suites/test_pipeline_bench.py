"""Benchmark: our input pipelines against the seeds' (torch DataLoader with per-sample
ToTensor+Normalize; Keras fit on numpy), training the MNIST reference for the same number of
steps. Figures only: pytest-benchmark tables, never asserts on time. Under ``make test`` they
run once, untimed (--benchmark-disable), so they keep working."""

import functools

import pytest

from fixtures import data as D
from impls import registry

pytestmark = pytest.mark.benchmark

STEPS, BATCH = 50, 64


@functools.lru_cache(maxsize=None)
def _ours_data():
    x, y = D.mnist_idx_arrays("train")
    return D.normalise(x[:STEPS * BATCH]), y[:STEPS * BATCH]


def _ours(twin):
    x, y = _ours_data()
    twin.fit_epoch(x, y, 0, BATCH, seed=0)


def _seeds(twin):
    from impls import seed_pipelines

    if twin.framework == "torch":
        seed_pipelines.torch_dataloader_steps(twin, STEPS, BATCH)
    else:
        seed_pipelines.keras_numpy_fit_steps(twin, STEPS, BATCH)


@pytest.mark.parametrize("framework", ["torch", "keras"])
@pytest.mark.parametrize("pipeline", ["ours", "seed"])
def test_mnist_input_pipeline(benchmark, framework, pipeline):
    twin = registry.build(registry.reference(framework, "mnist_cnn"))
    run = _ours if pipeline == "ours" else _seeds
    run(twin)  # warm-up: builds tensors, traces graphs
    benchmark.group = f"mnist_cnn {framework}: {STEPS} training steps, input pipeline"
    benchmark.extra_info.update({"steps": STEPS, "batch": BATCH, "samples": STEPS * BATCH})
    benchmark.pedantic(run, args=(twin,), rounds=3, warmup_rounds=0, iterations=1)
