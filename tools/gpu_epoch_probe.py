"""Where the graph variant's MNIST epoch goes (lent GPU, one short run)."""
import json, os, time
from twinbench.impls import frameworks
frameworks.set_determinism()
import torch
from twinbench.fixtures import data as D
from twinbench.impls import registry
out = {}
x, y = D.split("mnist_cnn", "train")
spec = registry.reference("torch", "mnist_cnn")

def twin_for(fmt, variant):
    t = registry.build(spec, seed=0)
    t.memory_format = fmt
    t.model.to(memory_format=fmt)
    t.place("gpu")
    if variant != "eager":
        t.use_variant(variant)
    return t

def epochs(t, n):
    times = []
    for e in range(n):
        torch.cuda.synchronize(); t0 = time.perf_counter()
        t.fit_epoch(x, y, e, 64, 0)
        torch.cuda.synchronize(); times.append(round(time.perf_counter() - t0, 4))
    return times

for name, fmt in (("channels_last", torch.channels_last), ("contiguous", torch.contiguous_format)):
    out[f"graph-{name}"] = epochs(twin_for(fmt, "graph"), 4)
    out[f"eager-{name}"] = epochs(twin_for(fmt, "eager"), 2)
    print(name, out[f"graph-{name}"], out[f"eager-{name}"], flush=True)
# GPU time of one replayed step vs host time, per format
for name, fmt in (("channels_last", torch.channels_last), ("contiguous", torch.contiguous_format)):
    t = twin_for(fmt, "graph"); t.fit_epoch(x[:640], y[:640], 0, 64, 0)
    g = t.step_graphs
    entry = g.graphs[64]
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize(); h0 = time.perf_counter(); s.record()
    for _ in range(200):
        entry.graph.replay()
    e.record(); torch.cuda.synchronize()
    out[f"replay-{name}"] = {"gpu_ms_per_step": s.elapsed_time(e) / 200, "host_ms_per_step": (time.perf_counter() - h0) * 1e3 / 200}
    print(name, out[f"replay-{name}"], flush=True)
# cudnn.benchmark (not the suite's determinism; information only)
torch.backends.cudnn.benchmark = True; torch.backends.cudnn.deterministic = False
out["graph-channels_last-cudnn-benchmark"] = epochs(twin_for(torch.channels_last, "graph"), 3)
out["graph-contiguous-cudnn-benchmark"] = epochs(twin_for(torch.contiguous_format, "graph"), 3)
print(out, flush=True)
json.dump(out, open(os.path.join(os.environ["OUT"], "probe.json"), "w"), indent=1)
