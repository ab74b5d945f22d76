"""The graph variant's MNIST epoch by kernel choice (lent GPU, one short run): optimizer per
parameter or on one flat buffer, conv1's weight gradient by cuDNN or as one GEMM."""
import json, os, time
from twinbench.impls import frameworks
frameworks.set_determinism()
import torch
import torch.nn.functional as F
from twinbench.fixtures import data as D
from twinbench.impls import registry
from twinbench.impls.speed import torch_graph
out = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
x, y = D.split("mnist_cnn", "train")
spec = registry.reference("torch", "mnist_cnn")


def twin_for(variant, **options):
    t = registry.build(spec, seed=0)
    t.place("gpu")
    t.use_variant(variant)
    t.graph_options = options
    return t


def sync_time(fn):
    torch.cuda.synchronize(); t0 = time.perf_counter(); fn(); torch.cuda.synchronize()
    return round(time.perf_counter() - t0, 4)


configs = [("graph", dict(flat=True, gemm_wgrad=False)), ("graph", dict(flat=True, gemm_wgrad=True)),
           ("graph-nondeterministic", dict(flat=True, gemm_wgrad=False))]
for variant, opts in configs:
    key = f"{variant} flat={opts['flat']} gemm={opts['gemm_wgrad']}"
    t = twin_for(variant, **opts)
    epochs = [sync_time(lambda e=e: t.fit_epoch(x, y, e, 64, 0)) for e in range(3)]
    entry = t.step_graphs.graphs[64]
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize(); s.record()
    for _ in range(200):
        entry.graph.replay()
    e.record(); torch.cuda.synchronize()
    out[key] = {"epochs_s": epochs, "replay_gpu_ms_per_step": round(s.elapsed_time(e) / 200, 4),
                "counters": t.step_graphs.counters()}
    print(key, out[key], flush=True)

# conv1's weight gradient alone (channels-last, as in the step): cuDNN deterministic vs the GEMM
CL = torch.channels_last
xin = torch.randn(64, 1, 28, 28, device="cuda").contiguous(memory_format=CL)
w = torch.randn(32, 1, 3, 3, device="cuda").contiguous(memory_format=CL)
g = torch.randn(64, 32, 26, 26, device="cuda").contiguous(memory_format=CL)


def cudnn_wgrad():
    return torch.ops.aten.convolution_backward(g, xin, w, None, (1, 1), (0, 0), (1, 1), False, (0, 0), 1,
                                               (False, True, False))[1]


def gemm_wgrad():
    rows = g.permute(0, 2, 3, 1).reshape(-1, 32)
    return (rows.t() @ torch_graph._patches(xin, (3, 3), (1, 1), (0, 0), (1, 1))).reshape(w.shape)


def per_call_ms(fn, n=100):
    fn(); torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(n):
        fn()
    e.record(); torch.cuda.synchronize()
    return round(s.elapsed_time(e) / n, 4)


ref = cudnn_wgrad()
out["conv1_wgrad_ms"] = {"cudnn_deterministic": per_call_ms(cudnn_wgrad), "gemm": per_call_ms(gemm_wgrad),
                         "gemm_vs_cudnn_max_rel": float((gemm_wgrad() - ref).abs().max() / ref.abs().max())}
with torch_graph.kernel_choice(False):
    out["conv1_wgrad_ms"]["cudnn_nondeterministic_benchmark"] = per_call_ms(cudnn_wgrad)
print(out["conv1_wgrad_ms"], flush=True)

# kernel table of the new default's replayed step
t = twin_for("graph")
t.fit_epoch(x[:640], y[:640], 0, 64, 0)
entry = t.step_graphs.graphs[64]
from torch.profiler import profile, ProfilerActivity
with profile(activities=[ProfilerActivity.CUDA]) as prof:
    for _ in range(20):
        entry.graph.replay()
    torch.cuda.synchronize()
table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=40, max_name_column_width=90)
open(os.path.join(os.environ["OUT"], "step-profile-graph-flat-gemm1.txt"), "w").write(table)
json.dump(out, open(os.path.join(os.environ["OUT"], "probe-flat-gemm1.json"), "w"), indent=1)
print("probe done", flush=True)
