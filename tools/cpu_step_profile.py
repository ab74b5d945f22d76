"""Where a torch MNIST training step spends its time on this CPU, against the sgemm roofline.

Run from the repository root: .venv/bin/python -m tools.cpu_step_profile  (nothing else running). Writes profile.json
and profile-ops.txt to reports/cpu-profile/. Three measurements, same process, torch's own thread count:
1. the sgemm roofline (impls/frameworks.sgemm_roofline: best of 3 4096^2 fp32 matmuls);
2. one training step of the reference (batch 64, the recipe's Adadelta) under torch.profiler:
   self CPU time per op;
3. the same GEMMs the convolutions and fc1 amount to (im2col shapes), as plain torch.mm: what
   oneDNN/MKL reach on these shapes, the ceiling a convolution written as a GEMM could hope for.
"""
import json, time
from pathlib import Path

from twinbench.impls import frameworks  # noqa: E402
frameworks.set_determinism()
import torch  # noqa: E402
from twinbench.fixtures import data as D  # noqa: E402
from twinbench.fixtures import expected as E  # noqa: E402
from twinbench.impls import registry  # noqa: E402

HERE = Path("reports/cpu-profile")  # ignored by git; committed evidence is copied to reports/examples/cpu-profile/
HERE.mkdir(parents=True, exist_ok=True)
out = {"threads": torch.get_num_threads(), "torch": torch.__version__}
out["roofline_gflops"] = round(frameworks.sgemm_roofline("cpu"), 1)

x, y = D.split("mnist_cnn", "train", 64 * 40)
twin = registry.build(registry.reference("torch", "mnist_cnn"), seed=0)
xt, yt = twin._input(x), twin._target(y)
opt = twin._optimizer()
twin.model.train(True)


def step(i):
    idx = slice(64 * (i % 40), 64 * (i % 40 + 1))
    opt.zero_grad(set_to_none=True)
    loss = twin._loss(twin.model(xt[idx]), yt[idx])
    loss.backward()
    opt.step()


for i in range(5):
    step(i)
best = float("inf")
for r in range(3):
    t0 = time.perf_counter()
    for i in range(20):
        step(i)
    best = min(best, (time.perf_counter() - t0) / 20)
flops = E.FLOPS_PER_SAMPLE["mnist_cnn"]["train"] * 64
out["step_ms"] = round(best * 1e3, 2)
out["step_gflops"] = round(flops / best / 1e9, 1)
out["step_roofline_fraction"] = round(flops / best / 1e9 / out["roofline_gflops"], 3)

from torch.profiler import ProfilerActivity, profile  # noqa: E402
with profile(activities=[ProfilerActivity.CPU]) as prof:
    for i in range(20):
        step(i)
ka = prof.key_averages()
(HERE / "profile-ops.txt").write_text(ka.table(sort_by="self_cpu_time_total", row_limit=30))
total = sum(e.self_cpu_time_total for e in ka)
out["ops_ms_per_step"] = {e.key: round(e.self_cpu_time_total / 20 / 1e3, 3)
                          for e in sorted(ka, key=lambda e: -e.self_cpu_time_total)[:15]}
out["profiled_ms_per_step"] = round(total / 20 / 1e3, 2)

# The convolutions and fc1 as GEMMs (forward; each backward is two GEMMs of the same FLOPs).
shapes = {"conv1 (im2col)": (64 * 26 * 26, 9, 32), "conv2 (im2col)": (64 * 24 * 24, 288, 64),
          "fc1": (64, 9216, 128), "fc2": (64, 128, 10)}
gemm = {}
for name, (m, k, n) in shapes.items():
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t0)
    gemm[name] = {"mkn": [m, k, n], "ms": round(best * 1e3, 3), "gflops": round(2 * m * k * n / best / 1e9, 1)}
out["gemm_at_layer_shapes"] = gemm

conv2 = torch.nn.Conv2d(32, 64, 3)
a = torch.randn(64, 32, 26, 26, requires_grad=True)
g = torch.randn(64, 64, 24, 24)
f = 2 * 64 * 64 * 24 * 24 * 32 * 9
res = {}
for what, fn in (("forward", lambda: conv2(a)),
                 ("forward+backward", lambda: torch.autograd.grad(conv2(a), (a, conv2.weight, conv2.bias), g))):
    for _ in range(3):
        fn()
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter(); fn(); best = min(best, time.perf_counter() - t0)
    n = f if what == "forward" else 3 * f
    res[what] = {"ms": round(best * 1e3, 2), "gflops": round(n / best / 1e9, 1)}
out["conv2_alone"] = res
(HERE / "profile.json").write_text(json.dumps(out, indent=1))
print(json.dumps(out, indent=1))
