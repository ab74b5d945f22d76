"""Import the frameworks in the one order that works, and set them up for exact comparisons.

torch must come before tensorflow (the other order segfaults), and so must the parts of torch
that load native libraries lazily: creating the first ``torch.optim`` optimizer imports
``torch._dynamo`` and triton, which segfaults once tensorflow is loaded. Importing them here,
first, avoids that. Every entry point (conftest.py, the adapters, tools) imports this module.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")     # keep TF's C++ start-up chatter out of reports
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import torch  # noqa: E402
import torch._dynamo  # noqa: E402,F401  (loads triton before tensorflow)
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

if keras.backend.backend() != "tensorflow":
    raise RuntimeError(f"KERAS_BACKEND is {keras.backend.backend()!r}; twinbench's Keras twins use TensorFlow. "
                       "Unset KERAS_BACKEND or set it to 'tensorflow'.")


def set_determinism() -> None:
    """fp32 everywhere: TF32 off in both frameworks, deterministic ops where available."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)
    tf.config.experimental.enable_tensor_float_32_execution(False)
    tf.config.experimental.enable_op_determinism()


def versions() -> dict:
    import numpy

    import platform

    return {"python": platform.python_version(), "torch": torch.__version__, "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": numpy.__version__}


def devices() -> dict:
    gpus = tf.config.list_physical_devices("GPU")
    return {
        "torch": ["cpu"] + [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
        + (["mps"] if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available() else []),
        "tensorflow": ["cpu"] + [g.name for g in gpus],
    }


def gpu_available() -> bool:
    return torch.cuda.is_available() or bool(tf.config.list_physical_devices("GPU"))
