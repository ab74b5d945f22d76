"""The torch ``graph`` speed variant: the whole training step replayed from CUDA graphs.

One replay runs the batch gather (``x[idx]``, ``y[idx]`` from the epoch's tensors already on the
device), the forward pass, the loss, the backward pass, the optimizer step and the running loss
sum. The host only copies the next batch's indices into a static buffer and calls ``replay()``:
no Python per layer, no kernel launches one by one, one synchronisation per epoch.

- One graph per batch length: the full batch, and the epoch's remainder (60,000 = 937 x 64 + 32)
  in a second graph from the same memory pool. Replays run in sequence on one stream, and each
  graph writes every gradient it reads (the gradients are set to None before each capture), so
  sharing the pool is safe.
- The optimizer runs with ``capturable=True`` (its step count and bias corrections on the device).
  Its scalar hyperparameters (learning rate, betas, eps, ...) are baked into a graph when it is
  captured, so each graph is keyed by them and captured again when they change: once per epoch
  under StepLR.
- The first step of each batch length on a runner is run eagerly, on a side stream, as warm-up
  (the optimizer state, cuBLAS and cuDNN initialise outside capture). It is a real step of the
  recipe: nothing is trained twice or skipped.

After replays, ``p.grad`` holds the buffers of the graph captured last, not necessarily the last
step's gradients: read gradients from an eager step, never from this runner.

Where CUDA graphs are not available (the CPU), capture is skipped: the same code path runs, with
``_Eager`` standing in for ``torch.cuda.CUDAGraph``, whose ``replay()`` runs the step from the same
static buffers. That is what the CPU tests check (suites/test_speed.py): bit-identical training
to the eager loop, captures and re-captures where expected. The variant's time counts only on a
GPU, after forward parity and a 20-step trajectory parity with eager (suites/speed.py).

The recipe is unchanged. Dropout masks come from the CUDA generator's graph-safe Philox offsets,
so a replay draws the masks the eager step would have drawn.

``deterministic=False`` (the ``graph-nondeterministic`` variant) chooses the step's kernels, at
warm-up and capture, with cuDNN's benchmark on and nondeterministic algorithms allowed; replays then
run the kernels chosen there. Measured on a lent H200 (fp32, TF32 off): a replayed MNIST step takes
0.907 ms of kernel time with the suite's determinism settings, 0.254 ms of it cuDNN's deterministic
weight-gradient kernel of conv2; a stand-alone script of the same step takes 0.640 ms with
nondeterministic algorithms allowed. The
global settings are restored after each warm-up and capture.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import torch


class _Eager:
    """Stands in for ``torch.cuda.CUDAGraph`` where capture is skipped: ``replay()`` runs the
    captured body eagerly, gradients set to None first (as before a capture)."""

    def __init__(self, body, zero_grad):
        self.body, self.zero_grad = body, zero_grad

    def replay(self):
        self.zero_grad()
        self.body()


@dataclass
class _Graph:
    graph: object       # torch.cuda.CUDAGraph, or _Eager where capture is skipped
    hyper: tuple        # the optimizer hyperparameters it was captured with
    index: torch.Tensor  # its static index buffer


def hyperparameters(opt) -> tuple:
    """The scalar hyperparameters of every param group (what a capture bakes in)."""
    return tuple(tuple(sorted((k, v) for k, v in g.items()
                              if k != "params" and isinstance(v, (bool, int, float, str, tuple))))
                 for g in opt.param_groups)


def can_capture(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.is_available()


def make_capturable(opt) -> None:
    """Switch a fresh optimizer to ``capturable=True`` (state on the device). Refuses an optimizer
    without that mode, or one that has already stepped (its step counts live on the CPU)."""
    if any("capturable" not in g for g in opt.param_groups):
        raise NotImplementedError(f"{type(opt).__name__} has no capturable mode: its step cannot be "
                                  f"captured in a CUDA graph")
    if any(opt.state.values()):
        raise NotImplementedError(f"{type(opt).__name__} has already stepped outside capture; "
                                  f"choose the graph variant before training")
    for g in opt.param_groups:
        g["capturable"] = True


def determinism_settings() -> dict:
    """The four switches that decide whether torch's kernels are deterministic, as they are now
    (frameworks.set_determinism() sets them: True, True, True, False)."""
    cudnn = torch.backends.cudnn
    return {"deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
            "cudnn_deterministic": cudnn.deterministic, "cudnn_benchmark": cudnn.benchmark}


@contextlib.contextmanager
def kernel_choice(deterministic: bool):
    """Where a step's kernels are chosen. Deterministic: the settings as they are (the suite's:
    deterministic algorithms, cuDNN benchmark off). Otherwise cuDNN benchmarks and may pick
    nondeterministic algorithms (atomics in a convolution's weight gradient) for the duration."""
    if deterministic:
        yield
        return
    cudnn = torch.backends.cudnn
    saved = determinism_settings()
    torch.use_deterministic_algorithms(False)
    cudnn.deterministic, cudnn.benchmark = False, True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved["deterministic_algorithms"], warn_only=saved["warn_only"])
        cudnn.deterministic, cudnn.benchmark = saved["cudnn_deterministic"], saved["cudnn_benchmark"]


class StepGraphs:
    """Trains a ``TorchTwin`` on one dataset's device tensors with whole-step graphs."""

    def __init__(self, twin, xt: torch.Tensor, yt: torch.Tensor, deterministic: bool = True):
        self.twin, self.xt, self.yt = twin, xt, yt
        self.deterministic = deterministic
        self.device = xt.device
        self.capture = can_capture(self.device)
        self.opt = twin._optimizer()
        self.graphs: dict[int, _Graph] = {}   # batch length -> its graph
        self.warm: set[int] = set()           # batch lengths already run once (eagerly)
        self.pool = None
        self.captures = 0
        self.capture_seconds = 0.0  # host time spent capturing (re-captures included)
        self.eager_steps = 0
        # sum of loss x batch length (float32 where the device has no float64: MPS)
        self.total = torch.zeros((), dtype=torch.float32 if self.device.type == "mps" else torch.float64,
                                 device=self.device)

    # -- the step, as captured ---------------------------------------------------------------
    def _body(self, index: torch.Tensor) -> None:
        loss = self.twin._loss(self.twin.model(self.xt[index]), self.yt[index])
        loss.backward()
        self.opt.step()
        self.total += loss.detach().to(self.total.dtype) * index.numel()

    def _zero_grad(self) -> None:
        self.opt.zero_grad(set_to_none=True)

    def _warm_up(self, index: torch.Tensor) -> None:
        """A real step, eagerly, outside capture (on a side stream on the GPU, as CUDA graphs need)."""
        self.eager_steps += 1
        self._zero_grad()
        if not self.capture:
            with kernel_choice(self.deterministic):
                self._body(index)
            return
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side), kernel_choice(self.deterministic):
            self._body(index)
        torch.cuda.current_stream(self.device).wait_stream(side)

    def _capture(self, length: int, hyper: tuple) -> _Graph:
        self.graphs.pop(length, None)  # a stale graph: released once the new one replaces it (the caller holds it)
        index = torch.zeros(length, dtype=torch.long, device=self.device)
        self.captures += 1
        if not self.capture:
            return _Graph(_Eager(lambda: self._body(index), self._zero_grad), hyper, index)
        t0 = time.perf_counter()
        graph = torch.cuda.CUDAGraph()
        self._zero_grad()  # backward inside the graph allocates (and so writes, not adds) every gradient
        with kernel_choice(self.deterministic), torch.cuda.graph(graph, pool=self.pool):
            self._body(index)
        self.pool = self.pool or graph.pool()
        self.capture_seconds += time.perf_counter() - t0
        return _Graph(graph, hyper, index)

    def counters(self) -> dict:
        return {"captured": self.capture, "deterministic": self.deterministic, "captures": self.captures, "capture_seconds": round(self.capture_seconds, 4),
                "eager_warm_up_steps": self.eager_steps}

    def step(self, index: torch.Tensor) -> None:
        """One optimizer step on the rows ``index`` (a device tensor) of the dataset."""
        length = index.numel()
        if length not in self.warm:
            self.warm.add(length)
            self._warm_up(index)
            return
        hyper = hyperparameters(self.opt)
        entry = self.graphs.get(length)
        if entry is None or entry.hyper != hyper:
            entry = self.graphs[length] = self._capture(length, hyper)
        entry.index.copy_(index)
        if self.capture:
            entry.graph.replay()
        else:  # the step runs now: under the kernel choice a capture would have made
            with kernel_choice(self.deterministic):
                entry.graph.replay()

    def epoch(self, order: torch.Tensor, batch_size: int) -> float:
        """One pass over ``order`` (device tensor of row indices); the mean loss (one sync)."""
        self.total.zero_()
        for start in range(0, order.numel(), batch_size):
            self.step(order[start:start + batch_size])
        return float(self.total) / order.numel()
