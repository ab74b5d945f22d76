"""Speed: pytest-benchmark figures for every reference twin on every device, side by side.

Figures (each its own benchmark group, so torch and Keras for one network, figure and device sit
in one table):

- ``train``: training throughput over TRAIN_STEPS optimizer steps of the recipe, data already on
  the device (``Twin.fit_epoch`` on a slice);
- ``epoch``: one full epoch of the reference recipe (60,000 images / 18,513 tweets);
- ``latency``: one eval-mode forward pass at batch 1;
- ``infer1000``: eval-mode forward throughput at batch 1000.

Each timed unit syncs the device once at its end (torch: ``torch.cuda.synchronize()``; TF: the
result materialised), never per kernel. ``extra_info`` carries samples/s, the FLOPs per sample
(fixtures/expected.py) and the achieved share of the device's sgemm roofline, which is measured
once per session and printed in the report header.

Variants, as separate and clearly named benchmarks: torch ``compile`` and ``cudagraphs`` (on a
GPU), torch ``graph`` (the whole training step in CUDA graphs, impls/speed/torch_graph.py; on a GPU) and
Keras ``xla`` (``jit_compile=True``). A variant's time counts only after its forward pass matched
the eager one within the forward-parity tolerance; the ``graph`` variant's, which changes how
training runs, also only after 33 steps of trajectory parity with eager (suites/speed.py).

Speed targets are figures in reports/speed.md, never asserts. Under ``--benchmark-disable``
(``make test``) every benchmark runs once, untimed, to keep it working; the ``epoch`` figure then
runs a two-batch slice instead of the full epoch.
"""

from __future__ import annotations

import numpy as np
import pytest

from twinbench.fixtures import expected as E
from twinbench.fixtures import tolerances as T
from twinbench.impls import frameworks, networks, registry
from twinbench.suites.helpers import max_violation
from twinbench.suites import speed, training

pytestmark = pytest.mark.benchmark

TRAIN_STEPS = 20
SMOKE_STEPS = 2  # steps (and epoch batches) of the untimed run under --benchmark-disable
# (warm-up rounds, timed rounds) per figure. A full MNIST epoch takes ~55 s (torch) and ~45 s
# (Keras) on two cores: one timed round, after a warm-up on a slice that builds graphs and caches.
ROUNDS = {"train": (1, 3), "latency": (10, 100), "infer1000": (2, 10)}
EPOCH_ROUNDS = {"mnist_cnn": 1, "tweet_fasttext": 3, "tweet_gru": 1, "mnist_bn": 1}  # a GRU epoch takes ~8 s (torch) and ~10 s (Keras)
VARIANTS = {"torch": ("compile", "cudagraphs", "graph", "graph-nondeterministic"), "keras": ("xla",)}
# torch.compile on a 2-core CPU costs minutes of compiling; graph's capture is skipped on a CPU
# (its CPU-side logic is tested below, untimed).
GPU_ONLY_VARIANTS = {"compile", "cudagraphs", "graph", "graph-nondeterministic"}
# Variants that change how a training step runs: trajectory parity first. graph-nondeterministic
# lets cuDNN choose nondeterministic kernels (impls/speed/torch_graph.kernel_choice): timed beside graph.
TRAINING_VARIANTS = {"graph", "graph-nondeterministic"}
# Timed full epochs on an accelerator, where one takes seconds: (warm-up epochs, timed epochs).
EPOCH_ROUNDS_ACCELERATOR = (1, 3)
# A variant's full epoch is timed on accelerators only: XLA's CPU convolutions are several times
# slower than oneDNN's (its 20-step train and batch-1000 figures on the CPU show by how much),
# and a full MNIST epoch of it would add ~10 minutes to every `make bench`.
EPOCH_VARIANTS_ON_CPU = False


def _param(spec, device, variant="eager"):
    marks = [pytest.mark.gpu] if device != "cpu" else []
    label = f"{spec.id}-{device}" + ("" if variant == "eager" else f"-{variant}")
    return pytest.param(spec, device, variant, id=label, marks=marks)


def cases():
    return [_param(s, d) for s in registry.REFERENCES for d in frameworks.bench_devices()]


def variant_cases(figure=None):
    out = []
    for spec in registry.REFERENCES:
        if spec.id != registry.reference(spec.framework, spec.network).id:
            continue  # variants for each framework's primary reference
        for variant in VARIANTS[spec.framework]:
            for device in frameworks.bench_devices():
                if device == "cpu" and (variant in GPU_ONLY_VARIANTS or (figure == "epoch" and not EPOCH_VARIANTS_ON_CPU)):
                    continue
                if variant in TRAINING_VARIANTS and device != "gpu":
                    continue  # CUDA graphs: elsewhere its capture is skipped and its time would be eager's
                if figure == "infer1000" and variant in TRAINING_VARIANTS:
                    continue  # the graph variant changes training only: its forward is eager
                out.append(_param(spec, device, variant))
    return out


def _train_split(network):
    """The training split, shared (and cached) with the convergence gates."""
    return networks.get(network).split("train")


def _twin(spec, device, variant, benchmark=None):
    """Build the twin on the device; for a variant, check forward parity first (and for a training
    variant, trajectory parity: its figures go into the benchmark's extra_info)."""
    if variant in TRAINING_VARIANTS:
        parity = speed.graph_parity(spec, device, variant)
        if benchmark is not None:
            benchmark.extra_info.update({"parity": parity.describe(), "parity_exact": parity.exact})
        if not parity.ok:
            pytest.fail(f"{spec.id} variant {variant} on {device} does not train like eager: {parity.describe()}; "
                        f"not timed", pytrace=False)
    twin = registry.build(spec, seed=0)
    x = _train_split(spec.network)[0][:T.PARITY_BATCH]
    eager = twin.forward(x) if variant != "eager" else None
    twin.place(device)
    if variant != "eager":
        try:
            twin.use_variant(variant)
        except NotImplementedError as exc:
            pytest.skip(f"{spec.id}: variant {variant} is not available: {exc}")
        got = _numpy(twin.inference_fn(x)())
        diff, worst, ok = max_violation(got, eager, T.FORWARD_ATOL, T.FORWARD_RTOL)
        if not ok:
            pytest.fail(f"{spec.id} variant {variant} on {device}: forward differs from eager, max |diff| {diff:.3g} "
                        f"at {worst}, tolerance atol {T.FORWARD_ATOL} + rtol {T.FORWARD_RTOL}; not timed", pytrace=False)
    return twin


def _numpy(out):
    return out if isinstance(out, np.ndarray) else out.detach().cpu().numpy()


def _measure(benchmark, fn, figure, spec, device, variant, samples, flops_kind, rounds):
    warmup, timed = rounds
    benchmark.group = f"{spec.network} {figure} {device}"
    benchmark.name = f"{spec.framework}-{spec.style}" + ("" if variant == "eager" else f"-{variant}")
    benchmark.extra_info.update({
        "network": spec.network, "framework": spec.framework, "style": spec.style, "device": device,
        "variant": variant, "figure": figure, "samples": samples,
        "flops_per_sample": E.FLOPS_PER_SAMPLE[spec.network][flops_kind]})
    benchmark.pedantic(fn, rounds=timed, warmup_rounds=warmup, iterations=1)
    if not benchmark.disabled:
        median = benchmark.stats.stats.median
        rate = samples / median
        gflops = rate * E.FLOPS_PER_SAMPLE[spec.network][flops_kind] / 1e9
        benchmark.extra_info.update({"samples_per_s": rate, "achieved_gflops": gflops,
                                     "roofline_gflops": frameworks.sgemm_roofline(device),
                                     "roofline_fraction": gflops / frameworks.sgemm_roofline(device)})


def _train(benchmark, spec, device, variant):
    twin = _twin(spec, device, variant, benchmark)
    batch = E.TRAIN_BATCH[spec.network]
    x, y = _train_split(spec.network)
    n = (SMOKE_STEPS if benchmark.disabled else TRAIN_STEPS) * batch
    xs, ys = x[:n], y[:n]
    _measure(benchmark, lambda: twin.fit_epoch(xs, ys, 0, batch, 0), "train", spec, device, variant, n,
             "train", ROUNDS["train"])


def _epoch(benchmark, spec, device, variant):
    twin = _twin(spec, device, variant, benchmark)
    batch = E.TRAIN_BATCH[spec.network]
    x, y = _train_split(spec.network)
    rounds = (0, EPOCH_ROUNDS.get(spec.network, 1))  # a user's pair: one timed epoch
    if benchmark.disabled:
        x, y = x[:SMOKE_STEPS * batch], y[:SMOKE_STEPS * batch]  # untimed smoke run under make test
    elif device == "cpu":
        twin.fit_epoch(x[:4 * batch], y[:4 * batch], 0, batch, 0)  # warm-up: graphs, caches, allocator
    else:
        rounds = EPOCH_ROUNDS_ACCELERATOR  # warm-up: a whole epoch (a graph variant captures in it)
    epochs = iter(range(0, 1000))
    _measure(benchmark, lambda: twin.fit_epoch(x, y, next(epochs), batch, 0), "epoch", spec, device, variant,
             len(x), "train", rounds)
    graphs = twin.step_graphs if variant in TRAINING_VARIANTS else None
    if graphs is not None:  # captures over the warm-up and timed epochs, and what they cost
        benchmark.extra_info.update(graphs.counters())


def _inference(benchmark, spec, device, variant, batch, figure):
    twin = _twin(spec, device, variant, benchmark)
    x = _train_split(spec.network)[0][:batch]
    _measure(benchmark, twin.inference_fn(x), figure, spec, device, variant, batch, "forward", ROUNDS[figure])


@pytest.mark.parametrize(("spec", "device", "variant"), cases())
def test_train_throughput(benchmark, spec, device, variant):
    _train(benchmark, spec, device, variant)


@pytest.mark.parametrize(("spec", "device", "variant"), cases())
def test_epoch(benchmark, spec, device, variant):
    _epoch(benchmark, spec, device, variant)


@pytest.mark.parametrize(("spec", "device", "variant"), cases())
def test_latency_batch1(benchmark, spec, device, variant):
    _inference(benchmark, spec, device, variant, 1, "latency")


@pytest.mark.parametrize(("spec", "device", "variant"), cases())
def test_inference_batch1000(benchmark, spec, device, variant):
    _inference(benchmark, spec, device, variant, 1000, "infer1000")


@pytest.mark.parametrize(("spec", "device", "variant"), variant_cases())
def test_variant_train_throughput(benchmark, spec, device, variant):
    _train(benchmark, spec, device, variant)


@pytest.mark.parametrize(("spec", "device", "variant"), variant_cases("epoch"))
def test_variant_epoch(benchmark, spec, device, variant):
    _epoch(benchmark, spec, device, variant)


@pytest.mark.parametrize(("spec", "device", "variant"), variant_cases("infer1000"))
def test_variant_inference_batch1000(benchmark, spec, device, variant):
    _inference(benchmark, spec, device, variant, 1000, "infer1000")


@pytest.mark.gpu
@pytest.mark.convergence
@pytest.mark.frameworks("torch")
@pytest.mark.parametrize("variant", ["eager", "graph", "graph-nondeterministic"])
def test_time_to_gate_gpu(benchmark, variant):
    """Time-to-99% of the torch MNIST reference on the GPU, data on the device: eager on the gates'
    seed; the graph variants (after their trajectory parity) over E.TIME_TO_GATE_SEEDS, scored by the
    olympic mean as MLPerf does."""
    spec = registry.reference("torch", "mnist_cnn")
    seeds = E.TIME_TO_GATE_SEEDS if variant in TRAINING_VARIANTS else (E.CONVERGENCE_SEED,)
    if variant in TRAINING_VARIANTS:
        _twin(spec, "gpu", variant, benchmark)  # parity first: a variant that trains differently is not timed
    runs = []
    benchmark.group = "mnist_cnn time-to-gate gpu"
    benchmark.name = "torch-module" + ("" if variant == "eager" else f"-{variant}")
    benchmark.pedantic(lambda: runs.extend(training.train_to_gate(spec, seed, False, device="gpu", variant=variant)
                                           for seed in seeds), rounds=1, warmup_rounds=0, iterations=1)
    epochs = [r.epochs_to_target for r in runs]
    seconds = [r.seconds_to_target for r in runs]
    score, time_score = training.olympic(epochs), training.olympic(seconds)
    benchmark.extra_info.update({
        "device": "gpu", "network": "mnist_cnn", "framework": "torch", "variant": variant, "figure": "time-to-gate",
        "seeds": list(seeds), "epochs_to_gate": epochs, "seconds_to_gate": seconds,
        "olympic_epochs_to_gate": score["mean"], "olympic_seconds_to_gate": time_score["mean"],
        "seconds_per_epoch": [round(e["train_seconds"], 4) for r in runs for e in r.epochs],
        "final_accuracy": [r.epochs[-1]["accuracy"] for r in runs]})
    assert score["mean"] is not None, (
        f"torch MNIST ({variant}) on the GPU did not reach {E.GATE_PERMILLE['mnist_cnn'] / 10}% in "
        f"{E.BUDGET_EPOCHS['mnist_cnn']} epochs: epochs to gate per seed {dict(zip(seeds, epochs))}")


# -- the graph variant's logic, wherever it runs -------------------------------------------------
# On a CPU the capture is skipped and the same static-buffer path runs eagerly: it must train bit
# for bit like the eager loop. Captures over the parity's 3 epochs of 10.5 batches: MNIST captures
# its full-batch graph after the warm-up step and again after each StepLR step (epochs 2, 3), its
# remainder graph in epochs 2 and 3 (its first remainder is the warm-up): 5. The tweets' eager
# epsilon-hat Adam rewrites eps before every step (capturable=True, which a GPU uses, keeps it on
# the device), so every step after the two warm-ups is a fresh capture keyed by the new eps: 31.
# On a GPU the tweets capture twice (full batch, remainder). A stale graph is never replayed.
# MNIST's Adadelta steps one flat buffer (impls/speed/torch_graph.FlatParameters); the tweets' epsilon-hat
# Adam, a subclass of the project's own, keeps its parameters.
