"""The CUDA-graph training step (impls/speed/torch_graph.py) and its kernel choices: its logic on the
CPU, its parity and determinism on a GPU, the flat optimizer buffer and the GEMM weight
gradients, the capture guard and the runner's lifetime. The benchmarks that time it are in
suites/test_speed.py."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from twinbench.fixtures import data as D
from twinbench.fixtures import tolerances as T
from twinbench.impls import frameworks, registry
from twinbench.suites import speed, training

pytestmark = pytest.mark.selftest


GRAPH_PLAN_ON_CPU = {"mnist_cnn": {"captures": 5, "eager_steps": 2, "flat_optimizer": True},
                     "tweet_fasttext": {"captures": 31, "eager_steps": 2, "flat_optimizer": False}}
GRAPH_CAPTURES_ON_GPU = {"mnist_cnn": 5, "tweet_fasttext": 2}


@pytest.mark.parametrize("spec", [registry.reference("torch", n) for n in ("mnist_cnn", "tweet_fasttext")],
                         ids=lambda s: f"{s.network}-graph-variant-with-capture-skipped-trains-like-eager")
def test_graph_variant_logic_on_cpu(spec):
    parity = speed.graph_parity(spec, "cpu")
    assert parity.exact, f"{spec.id}: the graph variant's step differs from eager on the CPU: {parity.describe()}"
    assert {"captures": parity.captures, "eager_steps": parity.eager_steps,
            "flat_optimizer": parity.runner["flat_optimizer"]} == GRAPH_PLAN_ON_CPU[spec.network], parity.describe()
    assert parity.runner["gemm_wgrad_convs"] == 0, parity.runner  # on the CPU only when asked for (below)


def test_the_nondeterministic_graph_variant_trains_like_eager_on_cpu_and_restores_the_settings():
    """Capture skipped, its kernel choice only flips global switches: the same bits as eager, and
    the suite's determinism settings as they were afterwards (a benchmark must not leave them off)."""
    from twinbench.impls.speed import torch_graph

    before = torch_graph.determinism_settings()
    parity = speed.graph_parity(registry.reference("torch", "mnist_cnn"), "cpu", "graph-nondeterministic")
    assert parity.exact, parity.describe()
    assert parity.captures == GRAPH_PLAN_ON_CPU["mnist_cnn"]["captures"], parity.describe()
    assert torch_graph.determinism_settings() == before == SUITE_DETERMINISM


# frameworks.set_determinism(), as every run sets it.
SUITE_DETERMINISM = {"deterministic_algorithms": True, "warn_only": True, "cudnn_deterministic": True,
                     "cudnn_benchmark": False}


def test_kernel_choice_restores_the_settings_when_the_step_raises():
    from twinbench.impls.speed import torch_graph

    with pytest.raises(RuntimeError, match="in the step"):
        with torch_graph.kernel_choice(False):
            inside = torch_graph.determinism_settings()
            assert not inside["deterministic_algorithms"] and inside["cudnn_benchmark"], inside
            raise RuntimeError("in the step")
    assert torch_graph.determinism_settings() == SUITE_DETERMINISM


@pytest.mark.gpu
@pytest.mark.frameworks("torch")
@pytest.mark.parametrize("spec", [registry.reference("torch", n) for n in ("mnist_cnn", "tweet_fasttext")],
                         ids=lambda s: f"{s.network}-graph-variant-trains-like-eager-on-the-gpu")
def test_graph_variant_parity_gpu(spec, record_property):
    parity = speed.graph_parity(spec, "gpu")
    record_property("parity", parity.describe())
    record_property("parity_exact", parity.exact)
    assert parity.ok, f"{spec.id}: the graph variant does not train like eager on the GPU: {parity.describe()}"
    assert parity.captures == GRAPH_CAPTURES_ON_GPU[spec.network], (
        f"{spec.id}: {parity.captures} captures, the plan is {GRAPH_CAPTURES_ON_GPU[spec.network]}: {parity.describe()}")


@pytest.mark.gpu
@pytest.mark.frameworks("torch")
@pytest.mark.parametrize("spec", [registry.reference("torch", n) for n in ("mnist_cnn", "tweet_fasttext")],
                         ids=lambda s: f"{s.network}-graph-variant-trains-the-same-bits-twice-on-the-gpu")
def test_graph_variant_is_deterministic_gpu(spec):
    """The deterministic variant's whole point: two runs from the same start, order and dropout
    stream end on the same bits (CUBLAS_WORKSPACE_CONFIG, deterministic cuDNN, GEMM weight gradients)."""
    diff = speed.repeat_difference(spec, "gpu")
    assert diff == 0, f"{spec.id}: two runs of the graph variant differ by up to {diff:.3g}"


def test_epsilon_hat_adam_capturable_step_matches_eager():
    """The tweets recipe's Adam, capturable (device-side t, bias corrections and eps), against its
    eager form over 30 steps of random gradients: measured 1.7e-5 of the embedding's movement
    (float32 rounding), held to the tweets' exact trajectory tolerance."""
    torch = frameworks.torch
    from twinbench.impls import torch_tweet_fasttext as M

    finals = []
    for capturable in (False, True):
        torch.manual_seed(0)
        model = M.FastText()
        start = [p.detach().clone() for p in model.parameters()]
        opt = M.optimizer(model.parameters())
        for group in opt.param_groups:
            group["capturable"] = capturable
        gen = torch.Generator().manual_seed(1)
        for _ in range(30):
            ids = torch.randint(0, M.VOCAB_SIZE, (32, M.SEQ_LEN), generator=gen)
            y = torch.randint(0, 2, (32,), generator=gen).float()
            opt.zero_grad()
            M.loss(model(ids), y).backward()
            opt.step()
        finals.append([p.detach().clone() for p in model.parameters()])
    for eager, captured, w0 in zip(*finals, start):
        rel = float((captured - eager).abs().max() / (eager - w0).abs().max())
        assert rel <= T.TRAJECTORY_WEIGHT_RTOL_EXACT["tweet_fasttext"], rel


def test_graph_variant_refuses_an_optimizer_it_cannot_capture():
    from twinbench.impls.speed import torch_graph

    torch = frameworks.torch
    param = torch.nn.Parameter(torch.zeros(3))
    stepped = torch.optim.Adam([param], lr=0.1)
    param.grad = torch.ones(3)
    stepped.step()
    with pytest.raises(NotImplementedError, match="already stepped"):
        torch_graph.make_capturable(stepped)

    class Plain(torch.optim.Optimizer):
        def __init__(self, params):
            super().__init__(params, {"lr": 0.1})

    with pytest.raises(NotImplementedError, match="no capturable mode"):
        torch_graph.make_capturable(Plain([param]))


# -- the graph variant's two kernel choices, on the CPU ----------------------------------------------
class _StubTwin:
    """What StepGraphs uses of a TorchTwin: model, _optimizer() and _loss."""

    def __init__(self, model, opt):
        self.model, self.opt = model, opt

    def _optimizer(self):
        return self.opt

    def _loss(self, out, y):
        return frameworks.torch.nn.functional.cross_entropy(out, y)


def _stub_run(make_opt, flat, steps=6, extra=None):
    """A small conv net trained ``steps`` steps through StepGraphs (capture skipped); its weights."""
    torch = frameworks.torch
    from twinbench.impls.speed import torch_graph

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Dropout(0.3), torch.nn.Linear(4 * 6 * 6, 3))
    if extra is not None:
        model.register_parameter("unused", torch.nn.Parameter(torch.ones(5)))
    x, y = torch.randn(40, 1, 8, 8), torch.randint(0, 3, (40,))
    twin = _StubTwin(model, make_opt(model.parameters()))
    runner = torch_graph.StepGraphs(twin, x, y, flat=flat, gemm_wgrad=False)
    torch.manual_seed(1)
    for step in range(steps):
        runner.step(torch.arange(step * 6, step * 6 + 6) % 40)
    return runner, [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("name", sorted(__import__("twinbench.impls.speed.torch_graph", fromlist=["x"]).ELEMENTWISE_OPTIMIZERS),
                         ids=lambda n: f"{n}-steps-one-flat-buffer-bit-for-bit-as-its-parameters")
def test_flat_optimizer_steps_like_the_per_parameter_one(name):
    """FlatParameters is only allowed for optimizers whose update is elementwise: each of them, with
    weight decay and momentum where it has them, trains the same bits flat as per parameter."""
    torch = frameworks.torch
    cls = getattr(torch.optim, name)
    extra = {k: v for k, v in {"weight_decay": 0.01, "momentum": 0.9, "amsgrad": True, "maximize": True,
                               "nesterov": True, "centered": True, "decoupled_weight_decay": True}.items()
             if k in __import__("inspect").signature(cls).parameters}
    make = lambda params: cls(params, lr=0.05, **extra)  # noqa: E731
    flat_runner, flat = _stub_run(make, flat=True)
    plain_runner, plain = _stub_run(make, flat=False)
    assert flat_runner.flat is not None and plain_runner.flat is None
    for a, b in zip(flat, plain):
        assert torch.equal(a, b), f"{name}: flat differs from per-parameter by {float((a - b).abs().max())}"
    assert any(not torch.equal(a, w) for a, w in zip(flat, _stub_run(make, flat=True, steps=0)[1])), "nothing trained"


def test_flat_optimizer_is_refused_where_it_would_train_differently():
    """A parameter the loss never reaches is skipped by eager and would step on zeros in the flat
    buffer; two parameter groups, an optimizer that is not torch's elementwise one, or tied weights
    cannot be flattened either. Left to itself the runner keeps the parameters; asked for it, it
    says why."""
    torch = frameworks.torch
    from twinbench.impls.speed import torch_graph

    def adam(params):
        return torch.optim.Adam(params, lr=0.01)

    runner, _ = _stub_run(adam, flat=None, steps=1, extra="unused")
    assert runner.flat is None and "gets no gradient" in runner.flat_refusal, runner.flat_refusal
    with pytest.raises(NotImplementedError, match="gets no gradient"):
        _stub_run(adam, flat=True, steps=1, extra="unused")

    def two_groups(params):
        params = list(params)
        return torch.optim.SGD([{"params": params[:2]}, {"params": params[2:], "lr": 0.5}], lr=0.1)

    with pytest.raises(NotImplementedError, match="2 parameter groups"):
        _stub_run(two_groups, flat=True, steps=1)

    class Clipped(torch.optim.SGD):  # not elementwise as far as the runner can know
        pass

    with pytest.raises(NotImplementedError, match="not one of torch's elementwise optimizers"):
        _stub_run(lambda p: Clipped(p, lr=0.1), flat=True, steps=1)

    tied = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16),
                               torch.nn.Linear(16, 3))
    tied[3].weight.data = tied[1].weight.data  # two parameters, one storage: flattening would untie them
    x, y = torch.randn(40, 1, 4, 4), torch.randint(0, 3, (40,))
    runner = torch_graph.StepGraphs(_StubTwin(tied, torch.optim.SGD(tied.parameters(), lr=0.1)), x, y)
    assert runner.flat is None and "share storage" in runner.flat_refusal, runner.flat_refusal


def test_flat_refusal_trial_backward_keeps_running_statistics_and_survives_a_failing_model():
    """The trial backward (which parameters does the loss reach?) runs in training mode; it must not
    move a BatchNorm's running statistics, and a model that cannot run on two rows is refused the
    flat buffer with the reason, not crashed."""
    torch = frameworks.torch
    from twinbench.impls.speed import torch_graph

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 6), torch.nn.BatchNorm1d(6),
                                torch.nn.Linear(6, 3))
    x, y = torch.randn(40, 1, 4, 4), torch.randint(0, 3, (40,))
    before = [b.clone() for b in model.buffers()]
    runner = torch_graph.StepGraphs(_StubTwin(model, torch.optim.Adam(model.parameters(), lr=0.01)), x, y)
    assert runner.flat is not None, runner.flat_refusal
    assert all(torch.equal(a, b) for a, b in zip(before, model.buffers()))

    class NeedsRows(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(16, 3)

        def forward(self, x):
            if len(x) < 4:
                raise ValueError("at least four rows")
            return self.fc(x.flatten(1))

    model = NeedsRows()
    runner = torch_graph.StepGraphs(_StubTwin(model, torch.optim.Adam(model.parameters(), lr=0.01)), x, y)
    assert runner.flat is None and "ValueError: at least four rows" in runner.flat_refusal, runner.flat_refusal


@pytest.mark.parametrize(("cin", "kernel", "stride", "padding", "dilation", "layout", "bias"), [
    (1, 3, 1, 0, 1, "channels_last", True), (3, 3, 2, 1, 1, "contiguous", False),
    (2, (3, 2), (1, 2), (2, 0), (2, 1), "channels_last", True)], ids=lambda v: str(v))
def test_gemm_weight_gradient_is_the_convolutions(cin, kernel, stride, padding, dilation, layout, bias):
    """The patches' strided view (impls/speed/torch_graph._patches) for strides, padding, dilation and
    both layouts: the GEMM weight gradient within float32 rounding of the convolution's own, the
    input and bias gradients and the forward as they were."""
    torch = frameworks.torch
    from twinbench.impls.speed import torch_graph

    fmt = getattr(torch, f"{layout}_format" if layout == "contiguous" else layout)
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(cin, 4, kernel, stride=stride, padding=padding, dilation=dilation, bias=bias)
    assert torch_graph.gemm_wgrad_convs(conv) == [conv]
    x = torch.randn(3, cin, 11, 10).contiguous(memory_format=fmt).requires_grad_()
    g = torch.randn_like(conv(x))
    got = []
    for gemm in (False, True):
        x.grad = None
        conv.zero_grad()
        with torch_graph.gemm_weight_gradients([conv] if gemm else []):
            out = conv(x)
        assert (type(out.grad_fn).__name__ == "_GemmWeightGradConv2dBackward") is gemm, out.grad_fn
        out.backward(g)
        got.append((out.detach(), x.grad.clone(), conv.weight.grad.clone(),
                    conv.bias.grad.clone() if bias else torch.zeros(())))
    for name, a, b in zip(("output", "input gradient", "weight gradient", "bias gradient"), *got):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5, msg=lambda m: f"{name}: {m}")


def test_flat_optimizer_state_outlives_its_runner_and_an_outside_zero_grad():
    """A new dataset object builds a new runner: the flat buffer and its Adadelta state carry over
    (else the accumulators would restart). An outside ``zero_grad(set_to_none=True)`` detaches the
    gradient views: the runner puts them back. Both keep the run bit for bit the eager one."""
    torch = frameworks.torch
    spec = registry.reference("torch", "mnist_cnn")
    x, y = D.split("mnist_cnn", "train", 3 * 64)
    start = training.trajectory_start("mnist_cnn")
    finals, flats = [], []
    for variant in ("eager", "graph"):
        twin = registry.build(spec, seed=0)
        twin.set_weights(start)
        if variant != "eager":
            twin.use_variant(variant)
        torch.manual_seed(T.TRAJECTORY_DROPOUT_SEED)
        for epoch in range(3):
            twin.fit_epoch(x[: 2 * 64], y[: 2 * 64], epoch, 64, T.TRAJECTORY_SEED)  # a new slice object each time
            twin.model.zero_grad(set_to_none=True)
            if variant != "eager":
                flats.append(twin.step_graphs.flat)
        finals.append(twin.get_weights())
    assert flats[0] is not None and flats[0] is flats[1] is flats[2], flats
    for name, want in finals[0].items():
        assert np.array_equal(finals[1][name], want), f"{name}: {np.max(np.abs(finals[1][name] - want)):.3g}"


def test_gemm_weight_gradients_train_the_mnist_net_like_eager():
    """What the deterministic graph variant does on a GPU, forced on the CPU: conv1 (9 taps) takes
    the GEMM, conv2 (288 taps) keeps the convolution's; the gradients within float32 rounding of the
    convolution's own (measured 1.0e-6 of the largest entry), the modules restored after, and the
    parity run within the trajectory tolerances."""
    torch = frameworks.torch
    from twinbench.impls.speed import torch_graph

    spec = registry.reference("torch", "mnist_cnn")
    x, y = D.split("mnist_cnn", "train", 64)
    grads, outs = [], []
    for gemm in (False, True):
        twin = registry.build(spec, seed=0)
        twin.place("cpu")
        twin.model.eval()
        convs = torch_graph.gemm_wgrad_convs(twin.model) if gemm else []
        with torch_graph.gemm_weight_gradients(convs):
            out = twin.model(twin._input(x))
            twin._loss(out, twin._target(y)).backward()
        assert not any("forward" in vars(m) for m in twin.model.modules())
        outs.append(out.detach())
        grads.append({n: p.grad.clone() for n, p in twin.model.named_parameters()})
    assert convs == [twin.model.conv1] and torch.equal(*outs)

    class Standardised(torch.nn.Conv2d):  # a forward of its own: never bypassed
        def forward(self, x):
            w = self.weight - self.weight.mean((1, 2, 3), keepdim=True)
            return self._conv_forward(x, w, self.bias)

    both = torch.nn.Sequential(Standardised(1, 4, 3), torch.nn.Conv2d(1, 4, 3))
    assert torch_graph.gemm_wgrad_convs(both) == [both[1]]
    for name, want in grads[0].items():
        rel = float((grads[1][name] - want).abs().max() / want.abs().max())
        assert rel <= 1e-5, f"{name}: GEMM weight gradient off by {rel:.3g} of its largest entry"
    parity = speed.graph_parity(spec, "cpu", options={"gemm_wgrad": True})
    assert parity.ok and parity.runner["gemm_wgrad_convs"] == 1, parity.describe()


def test_no_collection_during_capture_restores_the_collector():
    """The capture's guard: the collector off inside (where a collection could free a dead
    runner's graph pool mid-capture), no collection forced, and as it was afterwards, even on an
    error."""
    from twinbench.impls.speed import torch_graph

    assert gc.isenabled()
    with pytest.raises(RuntimeError, match="in the capture"):
        with torch_graph.no_collection_during_capture():
            assert not gc.isenabled()
            raise RuntimeError("in the capture")
    assert gc.isenabled()
    gc.disable()
    try:
        with torch_graph.no_collection_during_capture():
            pass
        assert not gc.isenabled(), "a collector that was off is left off"
    finally:
        gc.enable()


def test_a_dropped_graph_twin_frees_its_runner_without_a_collection():
    """The twin holds its runner and the runner holds the twin weakly: dropping the twin frees the
    runner (on a GPU, its graphs and memory pool) at once, never in a garbage collection that could
    come in the middle of another capture."""
    spec = registry.reference("torch", "mnist_cnn")
    x, y = D.split("mnist_cnn", "train", 160)
    twin = registry.build(spec, seed=0)
    twin.use_variant("graph")
    for epoch in range(2):
        twin.fit_epoch(x, y, epoch, 64, 0)
    runner, graphs = weakref.ref(twin.step_graphs), [weakref.ref(g.graph) for g in twin.step_graphs.graphs.values()]
    assert graphs
    gc.disable()
    try:
        del twin
        assert runner() is None and all(g() is None for g in graphs), "a reference cycle keeps the runner alive"
    finally:
        gc.enable()
