"""Each framework's speed variants, applied to an adapter's twin (impls/torch_adapter.py,
impls/keras_adapter.py call in here; the adapters hold no variant logic of their own)."""

from __future__ import annotations

import warnings

from twinbench.impls.speed import torch_graph

TORCH_VARIANTS = ("compile", "cudagraphs", "graph", "graph-nondeterministic")
KERAS_VARIANTS = ("xla",)


def use_torch_variant(twin, variant: str) -> None:
    """Switch a TorchTwin to ``variant`` before it trains (the optimizer is rebuilt)."""
    import torch

    flat = twin.__dict__.get("_graph_flat")  # the graph variant's optimizer state (torch_graph.FlatParameters)
    if (twin.opt is not None and any(twin.opt.state.values())) or (flat is not None and any(flat.opt.state.values())):
        raise ValueError(f"{twin.name}: choose the variant before training (it rebuilds the optimizer and "
                         f"scheduler, which would reset their state)")
    twin._drop_fit_state()
    if variant in ("graph", "graph-nondeterministic"):  # the whole training step in CUDA graphs
        twin.variant = "graph"
        twin.graph_deterministic = variant == "graph"
    elif variant == "compile":
        twin.model = torch.compile(twin.model)
    elif variant == "cudagraphs":  # CUDA graphs through torch.compile's cudagraph trees
        twin.model = torch.compile(twin.model, mode="reduce-overhead")
    else:
        raise ValueError(f"unknown torch variant {variant!r}; use {', '.join(repr(v) for v in TORCH_VARIANTS)}")
    twin.opt = None


def prepare_optimizer(twin, opt) -> None:
    """The graph variant's optimizer must be capturable (its step state on the device)."""
    if twin.variant == "graph" and torch_graph.can_capture(twin.device):
        torch_graph.make_capturable(opt)


def epoch_runner(twin, xt, yt):
    """The graph variant's runner for a dataset (torch_graph.StepGraphs), or None for eager training."""
    if twin.variant != "graph":
        return None
    return torch_graph.StepGraphs(twin, xt, yt, deterministic=twin.graph_deterministic, **twin.graph_options)


def use_keras_variant(twin, variant: str) -> None:
    """Switch a KerasTwin to ``variant`` (XLA: jit_compile)."""
    if variant not in KERAS_VARIANTS:
        raise ValueError(f"unknown Keras variant {variant!r}; use {', '.join(repr(v) for v in KERAS_VARIANTS)}")
    from tensorflow.python.framework import config as tf_config

    # Keras refuses XLA while TF op determinism is on (set for the equality checks). A speed
    # variant needs no bit-reproducibility: determinism is off until frameworks.set_determinism()
    # runs again (suites/test_speed.py does that after every benchmark); forward parity still
    # gates the variant's timing.
    tf_config.disable_op_determinism()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras warns and falls back; we say so instead
        twin.model.jit_compile = True
    if not twin.model.jit_compile:
        raise NotImplementedError("Keras refuses jit_compile=True for this model (keras.src.trainers."
                                  "trainer.model_supports_jit is False) and would silently run without XLA")
    twin.model.train_function = twin.model.predict_function = None  # rebuilt with XLA
