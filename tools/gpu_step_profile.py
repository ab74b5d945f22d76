"""Where one whole-step graph replay of the MNIST recipe spends its GPU time, and which settings
change it (lent GPU, one short run). Writes $OUT/probe2.json and $OUT/profile-*.txt, committed here as
step-profile.json and step-profile-graph.txt."""
import json, os, time, traceback
from twinbench.impls import frameworks
frameworks.set_determinism()
import torch
import torch.nn as nn
import torch.nn.functional as F
from twinbench.fixtures import data as D
from twinbench.impls import registry

OUT = os.environ["OUT"]
out = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
T0 = time.perf_counter()


def save():
    json.dump(out, open(os.path.join(OUT, "probe2.json"), "w"), indent=1)


def section(name):
    def wrap(fn):
        t = time.perf_counter()
        try:
            out[name] = fn()
        except Exception:
            out[name] = {"error": traceback.format_exc()[-1500:]}
        out.setdefault("seconds", {})[name] = round(time.perf_counter() - t, 2)
        print(name, out[name] if not isinstance(out[name], str) else out[name][:300], flush=True)
        save()
    return wrap


x, y = D.split("mnist_cnn", "train")
spec = registry.reference("torch", "mnist_cnn")
ref = registry.build(spec, seed=0)
ref.place("gpu")
XT, YT = ref._input(x), ref._target(y)


def table(prof):
    for key in ("self_device_time_total", "self_cuda_time_total"):
        try:
            return prof.key_averages().table(sort_by=key, row_limit=45, max_name_column_width=90)
        except Exception:
            continue
    return "no table"


@section("profile_eager_step")
def _():
    from torch.profiler import ProfilerActivity, profile
    t = registry.build(spec, seed=0)
    t.place("gpu")
    opt = t._optimizer()
    t.model.train(True)
    idx = torch.arange(64, device="cuda")

    def step():
        opt.zero_grad(set_to_none=True)
        loss = t._loss(t.model(XT[idx]), YT[idx])
        loss.backward()
        opt.step()
    for _ in range(5):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(20):
            step()
        torch.cuda.synchronize()
    text = table(prof)
    open(os.path.join(OUT, "profile-eager.txt"), "w").write(text)
    kernels = {}
    for e in prof.events():
        if str(getattr(e, "device_type", "")).endswith("CUDA"):
            dt = getattr(e, "device_time", None) or getattr(e, "cuda_time", 0)
            kernels[e.name] = kernels.get(e.name, 0.0) + dt
    top = sorted(kernels.items(), key=lambda kv: -kv[1])[:25]
    return {"kernels_us_per_step": {k[:110]: round(v / 20, 1) for k, v in top},
            "total_kernel_us_per_step": round(sum(kernels.values()) / 20, 1), "distinct_kernels": len(kernels)}


class UnfoldConv(nn.Module):
    """conv2 as im2col + one matmul (the same weight shape and maths)."""
    def __init__(self, conv):
        super().__init__()
        self.weight, self.bias, self.k = conv.weight, conv.bias, conv.kernel_size

    def forward(self, x):
        n, c, h, w = x.shape
        cols = F.unfold(x, self.k)  # (N, C*k*k, L)
        o = self.weight.shape[0]
        y = torch.matmul(self.weight.view(o, -1), cols) + self.bias.view(1, o, 1)
        return y.view(n, o, h - self.k[0] + 1, w - self.k[1] + 1)


def standalone(foreach=None, loss="ce", conv2="cudnn", fmt=torch.contiguous_format, replays=300):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Dropout(0.25), nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(0.5),
                        nn.Linear(128, 10)).cuda().to(memory_format=fmt)
    if conv2 == "unfold":
        net[2] = UnfoldConv(net[2])
    kw = {} if foreach is None else {"foreach": foreach}
    opt = torch.optim.Adadelta(net.parameters(), lr=1.0, rho=0.9, eps=1e-6, capturable=True, **kw)
    X = XT.contiguous(memory_format=fmt)
    idx = torch.arange(64, device="cuda")
    total = torch.zeros((), dtype=torch.float64, device="cuda")

    def body():
        out_ = net(X[idx])
        l = F.cross_entropy(out_, YT[idx]) if loss == "ce" else F.nll_loss(F.log_softmax(out_, 1), YT[idx])
        l.backward()
        opt.step()
        total.add_(l.detach().double() * 64)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            body()
    torch.cuda.current_stream().wait_stream(side)
    g = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(g):
        body()
    g.replay()
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(replays):
        g.replay()
    e.record()
    torch.cuda.synchronize()
    return round(s.elapsed_time(e) / replays, 4)


@section("standalone_ms_per_step")
def _():
    res = {}
    res["suite-determinism"] = standalone()
    res["suite-determinism-nll"] = standalone(loss="nll")
    res["foreach-False"] = standalone(foreach=False)
    res["channels_last"] = standalone(fmt=torch.channels_last)
    res["conv2-unfold"] = standalone(conv2="unfold")
    fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.utils.deterministic.fill_uninitialized_memory = False
    res["no-fill-uninitialized"] = standalone()
    torch.utils.deterministic.fill_uninitialized_memory = fill
    torch.use_deterministic_algorithms(False)
    res["no-use_deterministic_algorithms"] = standalone()
    res["no-use_deterministic_algorithms-unfold"] = standalone(conv2="unfold")
    torch.backends.cudnn.deterministic = False
    torch.backends.cudnn.benchmark = True
    res["cudnn-benchmark-nondeterministic"] = standalone()
    frameworks.set_determinism()
    return res


@section("suite_graph_ms_per_step")
def _():
    res = {}
    for fill in (True, False):
        torch.utils.deterministic.fill_uninitialized_memory = fill
        t = registry.build(spec, seed=0)
        t.place("gpu")
        t.use_variant("graph")
        t.fit_epoch(x[:640], y[:640], 0, 64, 0)
        g = t.step_graphs.graphs[64].graph
        torch.cuda.synchronize()
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(300):
            g.replay()
        e.record()
        torch.cuda.synchronize()
        res[f"fill_uninitialized_memory={fill}"] = round(s.elapsed_time(e) / 300, 4)
    torch.utils.deterministic.fill_uninitialized_memory = True
    return res


@section("profile_graph_replay")
def _():
    from torch.profiler import ProfilerActivity, profile
    t = registry.build(spec, seed=0)
    t.place("gpu")
    t.use_variant("graph")
    t.fit_epoch(x[:640], y[:640], 0, 64, 0)
    g = t.step_graphs.graphs[64].graph
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(20):
            g.replay()
        torch.cuda.synchronize()
    text = table(prof)
    open(os.path.join(OUT, "profile-graph.txt"), "w").write(text)
    return {"written": "profile-graph.txt"}


@section("conv2_ops_ms")
def _():
    res = {}
    conv = nn.Conv2d(32, 64, 3).cuda()
    a = torch.randn(64, 32, 26, 26, device="cuda", requires_grad=True)
    g = torch.randn(64, 64, 24, 24, device="cuda")
    def timed(fn, n=50):
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(n):
            fn()
        e.record(); torch.cuda.synchronize()
        return round(s.elapsed_time(e) / n, 4)
    res["forward"] = timed(lambda: conv(a))
    res["forward+backward"] = timed(lambda: torch.autograd.grad(conv(a), (a, conv.weight, conv.bias), g))
    res["backward_data_only"] = timed(lambda: torch.autograd.grad(conv(a), (a,), g))
    res["backward_weight_only"] = timed(lambda: torch.autograd.grad(conv(a.detach()), (conv.weight,), g))
    u = UnfoldConv(conv)
    res["unfold forward+backward"] = timed(lambda: torch.autograd.grad(u(a), (a, conv.weight, conv.bias), g))
    return res


out["total_seconds"] = round(time.perf_counter() - T0, 1)
save()
