"""Import the frameworks in the one order that works, and set them up for exact comparisons.

torch must come before tensorflow (the other order segfaults), and so must the parts of torch
that load native libraries lazily: creating the first ``torch.optim`` optimizer imports
``torch._dynamo`` and triton, which segfaults once tensorflow is loaded. Importing them here,
first, avoids that. Every entry point (conftest.py, the adapters, tools) imports this module.
"""

import contextlib
import os
import re
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")     # keep TF's C++ start-up chatter out of reports
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# cuBLAS needs a fixed workspace for deterministic results, set before CUDA initialises: without
# it torch.use_deterministic_algorithms raises (or, with warn_only, silently is not deterministic).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

# TensorFlow's C++ start-up lines, written to fd 2 before absl logging is initialised (so
# TF_CPP_MIN_LOG_LEVEL cannot silence them): dropped. Every other line is passed on.
STARTUP_NOISE = re.compile(r"absl::InitializeLog|port\.cc:\d+\] oneDNN custom operations|cudart_stub\.cc|"
                           r"cuda_platform\.cc:\d+\] failed call to cuInit|Unable to register cu(DNN|FFT|BLAS) factory|"
                           r"computation_placer|TF-TRT Warning|This TensorFlow binary is optimized|"
                           r"rebuild TensorFlow with the appropriate compiler flags")


@contextlib.contextmanager
def quiet_startup():
    """Run a block with fd 2 captured, then write back the lines that are not start-up noise."""
    fd = 2  # the C++ library writes to the process's fd 2, whatever sys.stderr is (pytest captures it)
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            sink.seek(0)
            kept = [line for line in sink.read().decode(errors="replace").splitlines() if not STARTUP_NOISE.search(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")


import torch  # noqa: E402
import torch._dynamo  # noqa: E402,F401  (loads triton before tensorflow)

try:  # a lent GPU machine may have torch only: the torch side still runs, Keras is skipped with the reason
    with quiet_startup():
        import tensorflow as tf  # noqa: E402
        import keras  # noqa: E402
        tf.config.list_physical_devices("GPU")  # the first device query (cuInit) is start-up too
    TF_MISSING = None
except ImportError as exc:
    tf = keras = None
    TF_MISSING = (f"TensorFlow/Keras cannot be imported here ({exc}); Keras twins and checks against a Keras "
                  "partner are skipped. Install the pins (make venv) to run them")

if keras is not None and keras.backend.backend() != "tensorflow":
    raise RuntimeError(f"KERAS_BACKEND is {keras.backend.backend()!r}; twinbench's Keras twins use TensorFlow. "
                       "Unset KERAS_BACKEND or set it to 'tensorflow'.")


_SHARED: dict = {}  # "base": torch's thread count before share_cores divided it
# Thread counts a user sets for torch's and TF's pools: share_cores leaves them alone.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def one_process_threads() -> int:
    """Torch's thread count for this process alone: before ``share_cores`` divided it, if it did."""
    return _SHARED.get("base", torch.get_num_threads())


def share_cores(workers: int) -> int | None:
    """Give this process 1/``workers`` of torch's threads, for torch and both TF pools: each
    framework sizes its pools to every core, and N pytest-xdist workers doing that oversubscribe
    the machine N times over (spinning OpenMP threads make it worse: measured, 2 cores, -n 2, a
    tweets detection candidate took 84 s in a worker and 19 s alone). The base is torch's own
    count, what this process would use alone (os.cpu_count() ignores CPU affinity and container
    limits); the count is never raised. A thread count the user set
    (OMP_NUM_THREADS, MKL_NUM_THREADS, TF_NUM_INTRAOP_THREADS, TF_NUM_INTEROP_THREADS) is left
    alone. Call it before TF runs anything: its pools are sized once (set later, TF raises).
    Returns the count set, or None. The count is part of ``numeric_environment``, so reused
    reference work is keyed by it."""
    if workers < 2 or any(k in os.environ for k in THREAD_ENV):
        return None
    _SHARED.setdefault("base", torch.get_num_threads())
    threads = max(1, _SHARED["base"] // workers)
    torch.set_num_threads(threads)
    if tf is not None:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    return threads


def set_determinism() -> None:
    """fp32 everywhere: TF32 off in both frameworks, deterministic ops where available."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)
    if tf is not None:
        tf.config.experimental.enable_tensor_float_32_execution(False)
        tf.config.experimental.enable_op_determinism()
    if keras is not None:
        precise_batch_moments()


_PRECISE_MOMENTS: list = []  # the original, once patched


def precise_batch_moments() -> bool:
    """Keras's batch moments (what BatchNormalization normalises with in training mode) accumulated
    in float64, as torch's already are; the result is float32 as before. TensorFlow's float32
    reductions are ~50x less precise than torch's (measured 2026-12-07 on (128, 26, 26, 32)
    activations: mean 2.4e-6 and variance 3.0e-6 relative from float64, torch 5e-8), which put a
    correct Keras BatchNorm network's training-mode outputs 3.9e-4 from exact after one layer where
    torch's are 6e-7: fifty times the forward tolerance, from arithmetic alone. Like TF32 off, this
    makes the frameworks' arithmetic comparable; it changes no formula, and a model that computes
    its own statistics is judged as it computes them. Returns False (with a warning) where the
    installed Keras has no such hook."""
    if _PRECISE_MOMENTS:
        return True
    try:
        from keras.src.backend.tensorflow import nn as tf_nn
        original = tf_nn._compute_moments
    except (ImportError, AttributeError):
        import warnings

        warnings.warn(f"Keras {keras.__version__}: no keras.src.backend.tensorflow.nn._compute_moments to make "
                      "batch moments precise; a BatchNorm network's training-mode comparisons may differ by "
                      "TensorFlow's float32 rounding (~1e-4)", stacklevel=2)
        return False

    def compute_moments(x, axes, keepdims):
        if x.dtype != tf.float32:
            return original(x, axes, keepdims)
        mean, variance = original(tf.cast(x, tf.float64), axes, keepdims)
        return tf.cast(mean, tf.float32), tf.cast(variance, tf.float32)

    tf_nn._compute_moments = compute_moments
    _PRECISE_MOMENTS.append(original)
    return True


def versions() -> dict:
    import numpy

    import platform

    return {"python": platform.python_version(), "torch": torch.__version__,
            "tensorflow": tf.__version__ if tf else "not installed", "keras": keras.__version__ if keras else "not installed",
            "numpy": numpy.__version__}


# Environment variables that change either framework's kernels or thread pools once imported.
NUMERIC_ENV_VARS = ("TF_ENABLE_ONEDNN_OPTS", "TF_XLA_FLAGS", "TF_DETERMINISTIC_OPS") + THREAD_ENV + (
    "ATEN_CPU_CAPABILITY", "DNNL_MAX_CPU_ISA", "ONEDNN_MAX_CPU_ISA", "CUBLAS_WORKSPACE_CONFIG")


def numeric_environment() -> dict:
    """What the references' arithmetic depends on beyond their code: the versions, torch's thread
    count and CPU kernel path (reductions split by thread), TF's thread pools, the determinism
    settings, Keras's float type and image layout (keras.json), and the environment variables
    that switch kernels (``NUMERIC_ENV_VARS``). suites/refcache.py keys reused reference work by it."""
    env = dict(versions(), torch_threads=torch.get_num_threads(), torch_cpu=torch.backends.cpu.get_cpu_capability(),
               torch_deterministic=torch.are_deterministic_algorithms_enabled(),
               environ={k: os.environ[k] for k in NUMERIC_ENV_VARS if k in os.environ})
    if keras is not None:
        env.update(keras_floatx=keras.config.floatx(), keras_image_data_format=keras.config.image_data_format(),
                   keras_precise_moments=bool(_PRECISE_MOMENTS))
    if tf is not None:
        from tensorflow.python.framework import config as tf_config  # no public getter for op determinism

        env.update(tf_intra=tf.config.threading.get_intra_op_parallelism_threads(),
                   tf_inter=tf.config.threading.get_inter_op_parallelism_threads(),
                   tf_deterministic=tf_config.is_op_determinism_enabled(), cpus=os.cpu_count())
    return env


def devices() -> dict:
    gpus = tf.config.list_physical_devices("GPU") if tf is not None else []
    return {
        "torch": ["cpu"] + [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
        + (["mps"] if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available() else []),
        "tensorflow": (["cpu"] + [g.name for g in gpus]) if tf is not None else ["not installed"],
    }


_ROOFLINE: dict = {}


def sgemm_roofline(device: str = "cpu", n: int = 4096, reps: int = 3) -> float:
    """The device's measured fp32 matmul rate in GFLOP/s: the best of ``reps`` n x n sgemms
    (torch, TF32 off, all the threads torch uses). Measured once per process and device."""
    if device not in _ROOFLINE:
        import time

        dev = torch.device({"gpu": "cuda"}.get(device, device))
        a = torch.randn(n, n, device=dev)
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        (a @ a).sum().item()  # warm-up
        best = float("inf")
        for _ in range(reps):
            sync()
            t0 = time.perf_counter()
            a @ a
            sync()
            best = min(best, time.perf_counter() - t0)
        _ROOFLINE[device] = 2 * n ** 3 / best / 1e9
    return _ROOFLINE[device]


def bench_devices() -> list:
    """Devices a benchmark may target: cpu always, gpu (cuda / a TF GPU) always listed so that
    its benchmarks skip with a reason where none is visible, mps when visible."""
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    return ["cpu", "gpu"] + (["mps"] if mps else [])


def gpu_available(framework: str | None = None) -> bool:
    """Whether ``framework`` (torch, keras) sees a GPU; either of them with None. One predicate per
    framework: a lent machine may have a GPU that torch sees and TensorFlow does not."""
    torch_gpu = torch.cuda.is_available()
    keras_gpu = tf is not None and bool(tf.config.list_physical_devices("GPU"))
    return {"torch": torch_gpu, "keras": keras_gpu}.get(framework, torch_gpu or keras_gpu)
