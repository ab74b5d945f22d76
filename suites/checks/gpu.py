"""GPU conformance: forward parity on the device (fp32, TF32 off) against the CPU forward.

Skipped with the reason on a machine without a GPU; failed under --require-gpu.
"""


from twinbench.fixtures import tolerances as T
from twinbench.suites.helpers import max_violation, real_batch


def check_forward_parity_on_gpu(twin):
    x, _ = real_batch(twin.network, T.PARITY_BATCH)
    cpu = twin.forward_on("cpu", x)  # pinned: TensorFlow places an unpinned forward on the GPU
    gpu = twin.forward_on("gpu", x)
    diff, worst, ok = max_violation(gpu, cpu, T.FORWARD_ATOL, T.FORWARD_RTOL)
    assert ok, (f"{twin.name}: GPU output differs from CPU, max |diff| {diff:.3g} at {worst}, tolerance atol "
                f"{T.FORWARD_ATOL} + rtol {T.FORWARD_RTOL} (TF32 is off)")
    return {"gpu_vs_cpu_max_abs_diff": diff}
