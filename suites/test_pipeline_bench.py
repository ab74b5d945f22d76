"""Benchmark: our input pipelines against the seeds' (torch DataLoader with per-sample
ToTensor+Normalize; Keras fit on numpy), training the MNIST reference for the same number of
steps. Figures only: pytest-benchmark tables, never asserts on time. Under ``make test`` they
run once, untimed (--benchmark-disable), so they keep working."""

import functools

import pytest

from twinbench.fixtures import data as D
from twinbench.impls import registry

pytestmark = pytest.mark.benchmark

STEPS, BATCH = 50, 64
SMOKE_STEPS = 4  # the untimed run under --benchmark-disable


@functools.lru_cache(maxsize=None)
def _ours_data(steps):
    return D.split("mnist_cnn", "train", steps * BATCH)


def _ours(twin, steps):
    x, y = _ours_data(steps)
    twin.fit_epoch(x, y, 0, BATCH, seed=0)


def _seeds(twin, steps):
    from twinbench.impls import seed_pipelines

    if twin.framework == "torch":
        seed_pipelines.torch_dataloader_steps(twin, steps, BATCH)
    else:
        seed_pipelines.keras_numpy_fit_steps(twin, steps, BATCH)


@pytest.mark.parametrize("framework", ["torch", "keras"])
@pytest.mark.parametrize("pipeline", ["ours", "seed"])
def test_mnist_input_pipeline(benchmark, framework, pipeline):
    twin = registry.build(registry.reference(framework, "mnist_cnn"))
    run = _ours if pipeline == "ours" else _seeds
    steps = SMOKE_STEPS if benchmark.disabled else STEPS
    benchmark.group = "mnist_cnn pipeline cpu"
    benchmark.name = f"{framework}-{pipeline}"
    benchmark.extra_info.update({"network": "mnist_cnn", "framework": framework, "device": "cpu",
                                 "variant": f"{pipeline} pipeline", "figure": "pipeline", "steps": steps,
                                 "batch": BATCH, "samples": steps * BATCH})
    # a warm-up round builds tensors and traces graphs (under --benchmark-disable: one plain run)
    benchmark.pedantic(run, args=(twin, steps), rounds=3, warmup_rounds=1, iterations=1)
    if not benchmark.disabled:
        benchmark.extra_info["samples_per_s"] = steps * BATCH / benchmark.stats.stats.median


@pytest.mark.gpu
@pytest.mark.frameworks("torch")
def test_mnist_examples_pipeline_epoch_gpu(benchmark):
    """One epoch of pytorch/examples' own pipeline on the GPU (DataLoader with per-sample transforms,
    1 worker, pin_memory): what test_speed's epoch figures (eager, graph) are compared with."""
    from twinbench.impls import seed_pipelines

    twin = registry.build(registry.reference("torch", "mnist_cnn"))
    twin.place("gpu")
    benchmark.group = "mnist_cnn epoch gpu"
    benchmark.name = "torch-module-examples-pipeline"
    samples = len(D.mnist_idx_arrays("train")[1])
    benchmark.extra_info.update({"network": "mnist_cnn", "framework": "torch", "device": "gpu",
                                 "variant": "examples pipeline", "figure": "epoch", "samples": samples})
    benchmark.pedantic(seed_pipelines.examples_pipeline_epoch, args=(twin,), rounds=1, warmup_rounds=0,
                       iterations=1)
    if not benchmark.disabled:
        benchmark.extra_info["samples_per_s"] = samples / benchmark.stats.stats.median
