"""The torch ``graph`` speed variant: the whole training step replayed from CUDA graphs.

One replay runs the batch gather (``x[idx]``, ``y[idx]`` from the epoch's tensors already on the
device), the forward pass, the loss, the backward pass, the optimizer step and the running loss
sum. The host only copies the next batch's indices into a static buffer and calls ``replay()``:
no Python per layer, no kernel launches one by one, one synchronisation per epoch.

- One graph per batch length: the full batch, and the epoch's remainder (60,000 = 937 x 64 + 32)
  in a second graph from the same memory pool. Replays run in sequence on one stream, and each
  graph writes every gradient it reads (the gradients are set to None before each capture, or,
  on the flat buffer, zeroed at the start of the step), so sharing the pool is safe.
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

Two choices make the deterministic step fast (measured on a lent H200, fp32, TF32 off; the MNIST
epoch went from 0.890 s to 0.568 s): the optimizer steps one flat buffer (``FlatParameters``), and
narrow convolutions compute their weight gradient as one GEMM (``_GemmWeightGradConv2d``). Neither
changes the recipe. The first is bit for bit on the CPU, where eager and flat both take the
single-tensor path; on a GPU eager's foreach kernels may round differently, and both are judged
by the trajectory parity there.

``deterministic=False`` (the ``graph-nondeterministic`` variant) chooses the step's kernels, at
warm-up and capture, with cuDNN's benchmark on and nondeterministic algorithms allowed; replays then
run the kernels chosen there (0.520 s per MNIST epoch on the H200). The global settings are
restored after each warm-up and capture.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import time
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F


class _Eager:
    """Stands in for ``torch.cuda.CUDAGraph`` where capture is skipped: ``replay()`` runs the
    captured body eagerly, gradients set to None first (as before a capture). It holds its runner
    weakly, as a CUDA graph does not hold it at all (see StepGraphs.twin)."""

    def __init__(self, runner, index):
        self.runner, self.index = weakref.ref(runner), index

    def replay(self):
        runner = self.runner()
        runner._zero_grad()
        runner._body(self.index)


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


# -- the optimizer on one flat buffer -----------------------------------------------------------
# torch's foreach optimizers launch one multi_tensor_apply kernel per operation, one thread block
# per chunk of 65,536 elements: by that count about 19 blocks for the MNIST net's 1.2M parameters,
# on a GPU of 132 SMs. Measured on a lent H200: 0.142 ms of a 0.907 ms replayed step went to
# Adadelta's multi_tensor_apply kernels, and the flat buffer took the epoch from 0.890 s to 0.787 s.
# Viewing every parameter (and its gradient) into one flat buffer and stepping that buffer with the
# single-tensor path runs each operation as one ordinary elementwise kernel over all 1.2M elements.
# Elementwise optimizers only: the update of an element depends on that element's parameter,
# gradient and state alone, so the flat buffer steps exactly as its pieces would.
ELEMENTWISE_OPTIMIZERS = frozenset({"Adadelta", "Adagrad", "Adam", "AdamW", "Adamax", "NAdam", "RAdam",
                                    "RMSprop", "SGD"})
# Group entries that say how the optimizer runs, not what it computes: the flat one sets its own.
_RUN_KEYS = frozenset({"params", "foreach", "fused", "capturable", "differentiable"})


def _dense_layout(p: torch.Tensor) -> bool:
    return p.is_contiguous() or (p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last))


def flat_refusal(opt, twin, xt, yt) -> str | None:
    """Why ``opt`` cannot step one flat buffer in place of its parameters (None: it can)."""
    name = type(opt).__name__
    if name not in ELEMENTWISE_OPTIMIZERS or type(opt).__module__.split(".")[:2] != ["torch", "optim"]:
        return f"{type(opt).__module__}.{name} is not one of torch's elementwise optimizers"
    if len(opt.param_groups) != 1:
        return f"{len(opt.param_groups)} parameter groups"
    if any(st and float(st.get("step", 1)) != 0 for st in opt.state.values()):  # Adagrad has state at step 0
        return "the optimizer has already stepped"
    params = opt.param_groups[0]["params"]
    if len({id(p) for p in params}) != len(params):
        return "a parameter is listed twice"
    if any(p.is_sparse or not p.is_leaf or not p.requires_grad or not _dense_layout(p) or p.grad is not None
           for p in params) or len({(p.dtype, p.device) for p in params}) != 1:
        return "a parameter is sparse, not a leaf, frozen, strided, holds a gradient, or differs in dtype or device"
    if len({p.untyped_storage().data_ptr() for p in params}) != len(params):
        return "two parameters share storage (tied weights): the flat buffer would untie them"
    # A parameter the loss never reaches keeps no gradient, and eager skips it; in the flat buffer
    # it would step on zeros (and Adadelta's or Adam's state would decay). One small backward in
    # training mode, outside the recipe's random stream, with the buffers (running statistics)
    # put back afterwards, says.
    buffers = [(b, b.detach().clone()) for b in twin.model.buffers()]
    was = twin.model.training
    twin.model.train(True)
    try:
        with torch.random.fork_rng(devices=[xt.device] if xt.device.type == "cuda" else []):
            loss = twin._loss(twin.model(xt[:2]), yt[:2])
            grads = torch.autograd.grad(loss, params, allow_unused=True)
    except Exception as exc:  # a model that needs more rows, say: keep the parameters as they are
        return f"a trial backward on two rows raised {type(exc).__name__}: {exc}"
    finally:
        twin.model.train(was)
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
    if any(g is None for g in grads):
        return "a parameter gets no gradient from the loss"
    return None


class FlatParameters:
    """Every parameter of ``source`` (one group, elementwise) viewed into one flat buffer, its gradient
    into a second, and an optimizer of the same class and hyperparameters stepping the buffer with
    the single-tensor path. The model keeps its parameter objects (their ``.data`` now views); each
    step zeroes the gradient buffer and backward accumulates into the views in place."""

    def __init__(self, source, capturable: bool):
        self.source = source
        params = source.param_groups[0]["params"]
        # Each parameter starts on a 256-byte boundary (the kernels cuBLAS and cuDNN choose may
        # depend on alignment); the gaps are zeros that step on zero gradients, which leaves them
        # zero in every elementwise optimizer.
        align = max(1, 256 // params[0].element_size())
        offsets, total = [], 0
        for p in params:
            offsets.append(total)
            total += -(-p.numel() // align) * align
        flat = torch.zeros(total, dtype=params[0].dtype, device=params[0].device)
        grad = torch.zeros_like(flat)
        with torch.no_grad():
            for p, offset in zip(params, offsets):
                n = p.numel()
                view = flat[offset:offset + n].as_strided(p.shape, p.stride())
                view.copy_(p)
                p.data = view
                p.grad = grad[offset:offset + n].as_strided(p.shape, p.stride())
        self.param = torch.nn.Parameter(flat)  # the same storage: stepping it steps the model
        self.param.grad = grad
        self.grad = grad
        group, accepts = source.param_groups[0], inspect.signature(type(source)).parameters
        kwargs = {k: v for k, v in group.items() if k in accepts and k not in _RUN_KEYS}
        kwargs["foreach"] = False
        if "capturable" in accepts:
            kwargs["capturable"] = capturable
        self.opt = type(source)([self.param], **kwargs)
        self.views = [(p, p.grad) for p in params]
        self.sync()

    def attach(self) -> None:
        """Put the gradient views back where something set them to None or replaced them (an
        outside ``zero_grad(set_to_none=True)``): else backward would write gradients outside the
        buffer, and the flat optimizer would step on zeros."""
        for p, view in self.views:
            if p.grad is not view:
                p.grad = view

    def sync(self) -> None:
        """Carry the source's current hyperparameters (a scheduler steps the source) to the flat one."""
        group = self.opt.param_groups[0]
        for k, v in self.source.param_groups[0].items():
            if k not in _RUN_KEYS:
                group[k] = v


# -- narrow convolutions' weight gradients as one GEMM --------------------------------------------
# With deterministic algorithms, cuDNN computes the weight gradient of conv1 (32x1x3x3: nine taps,
# one input channel) with wgrad2d_grouped_direct_kernel: 0.253 ms of a 0.82 ms replayed step on a
# lent H200 (flat optimizer), against ~0.1 ms for conv2's (288 taps per filter, FFT algorithms).
# (An earlier note blamed conv2; a probe with conv2 in NCHW, whose deterministic wgrad alone takes
# 0.084 ms, left the 0.253 ms kernel in place.) The same gradient is one matrix product: the output
# gradient as (N*OH*OW) x O rows, a view when it is channels-last, against the input's patches
# (im2col) as (N*OH*OW) x (C*kh*kw), made by one strided copy. cuBLAS is deterministic with
# CUBLAS_WORKSPACE_CONFIG set; the forward and the input gradient stay cuDNN's. Only the summation
# order differs, so the run is judged by the trajectory parity, not bit for bit. Only narrow
# convolutions (C*kh*kw <= GEMM_WGRAD_MAX_TAPS) take it. The limit rests on one measured case each
# side: conv1 (9 taps) gains 0.216 s per epoch; for conv2 (288 taps) the patches are 42 MB and only
# a first version was timed, with F.unfold (one im2col kernel per image), at 1.15 s per epoch
# against 0.79 s. Convolutions between those sizes, 1x1 ones included, are not measured.
GEMM_WGRAD_MAX_TAPS = 32


def _patches(x: torch.Tensor, kernel, stride, padding, dilation) -> torch.Tensor:
    """im2col as an (N*OH*OW) x (C*kh*kw) matrix: one strided view of ``x``, copied once."""
    if any(padding):
        x = F.pad(x, (padding[1], padding[1], padding[0], padding[0]))
    n, c, h, w = x.shape
    kh, kw = kernel
    oh = (h - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    sn, sc, sh, sw = x.stride()
    view = x.as_strided((n, oh, ow, c, kh, kw),
                        (sn, sh * stride[0], sw * stride[1], sc, sh * dilation[0], sw * dilation[1]))
    return view.reshape(n * oh * ow, c * kh * kw)


class _GemmWeightGradConv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation):
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, dilation)
        return F.conv2d(x, weight, bias, stride, padding, dilation)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        stride, padding, dilation = ctx.conf
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = torch.nn.grad.conv2d_input(x.shape, weight, grad, stride, padding, dilation)
        if ctx.needs_input_grad[1]:
            rows = grad.permute(0, 2, 3, 1).reshape(-1, grad.shape[1])  # (N*OH*OW) x O
            cols = _patches(x, weight.shape[2:], stride, padding, dilation)
            gw = (rows.t() @ cols).reshape(weight.shape)
        if ctx.needs_input_grad[2]:
            gb = grad.sum((0, 2, 3))
        return gx, gw, gb, None, None, None


def gemm_wgrad_convs(model) -> list:
    """The narrow ``nn.Conv2d`` modules (at most GEMM_WGRAD_MAX_TAPS taps per filter) whose weight
    gradient can be one GEMM: plain Conv2d forwards (a subclass's own forward, say a quantised or
    standardised weight, is left alone), one group, zero padding given as numbers."""
    return [m for m in model.modules()
            if isinstance(m, torch.nn.Conv2d) and type(m).forward is torch.nn.Conv2d.forward
            and type(m)._conv_forward is torch.nn.Conv2d._conv_forward and m.groups == 1
            and m.padding_mode == "zeros" and not isinstance(m.padding, str) and "forward" not in vars(m)
            and m.weight[0].numel() <= GEMM_WGRAD_MAX_TAPS]


@contextlib.contextmanager
def gemm_weight_gradients(convs):
    """For the duration, each conv's forward is ``_GemmWeightGradConv2d`` (the same forward)."""
    for m in convs:
        m.forward = lambda x, m=m: _GemmWeightGradConv2d.apply(x, m.weight, m.bias, m.stride, m.padding,
                                                                m.dilation)
    try:
        yield
    finally:
        for m in convs:
            vars(m).pop("forward", None)


@contextlib.contextmanager
def no_collection_during_capture():
    """No garbage collection until the capture ends. torch no longer collects before a capture
    (``torch.compiler.config.force_cudagraph_gc`` is off), so a collection can come in the middle
    of one and free an earlier, unreachable runner's graphs and memory pool: freeing device memory
    while a stream is capturing invalidates the capture. Two make gpu runs on a lent H200 failed a
    capture in the time-to-gate run, which follows the parity run's two dropped twins
    (CUDNN_STATUS_INTERNAL_ERROR or cudaErrorStreamCaptureInvalidated inside a convolution); a
    collection there is the likely cause, not yet confirmed on a GPU. No collection is forced
    here: a capture comes once per epoch under StepLR, inside the timed epoch, and a full
    collection costs 0.03-0.3 s with torch and TensorFlow loaded."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class StepGraphs:
    """Trains a ``TorchTwin`` on one dataset's device tensors with whole-step graphs."""

    def __init__(self, twin, xt: torch.Tensor, yt: torch.Tensor, deterministic: bool = True,
                 flat: bool | None = None, gemm_wgrad: bool | None = None):
        """``flat``: step the optimizer on one flat buffer (``FlatParameters``); None: wherever it
        can. ``gemm_wgrad``: narrow convolutions' weight gradients as one GEMM; None: when capturing
        with deterministic kernels (where cuDNN's deterministic weight gradient is slow). On the CPU
        both default to what keeps the run bit for bit the eager one (flat: yes; GEMM: no)."""
        # The twin holds its runner (fit_epoch's cache); the runner holds the twin weakly. Without that
        # cycle a dropped twin frees its graphs and their memory pool at once, by reference counting,
        # instead of at some later garbage collection, which could come in the middle of another
        # capture (this runner's guard covers its own captures only, not torch.compile's).
        self._twin = weakref.ref(twin)
        self.xt, self.yt = xt, yt
        self.deterministic = deterministic
        self.device = xt.device
        self.capture = can_capture(self.device)
        self.source = twin._optimizer()  # the twin's: its scheduler steps it, its hyperparameters key the graphs
        # A runner is rebuilt for every new dataset; the flat buffer and its optimizer's state stay
        # with the twin (its parameters are views into the buffer from the first runner on).
        reused = twin.__dict__.get("_graph_flat")
        if reused is not None and reused.source is self.source:
            if flat is False:
                raise NotImplementedError("this twin's optimizer already steps a flat buffer; rebuild the "
                                          "twin for per-parameter steps")
            self.flat, self.flat_refusal = reused, None
        else:
            self.flat_refusal = flat_refusal(self.source, twin, xt, yt) if flat is not False else "not asked for"
            if flat and self.flat_refusal:
                raise NotImplementedError(f"the graph variant cannot step one flat buffer: {self.flat_refusal}")
            self.flat = FlatParameters(self.source, self.capture) if self.flat_refusal is None else None
            if self.flat:
                twin._graph_flat = self.flat
        self.opt = self.flat.opt if self.flat else self.source
        if gemm_wgrad is None:
            gemm_wgrad = self.capture and deterministic
        self.convs = gemm_wgrad_convs(twin.model) if gemm_wgrad else []
        self.graphs: dict[int, _Graph] = {}   # batch length -> its graph
        self.warm: set[int] = set()           # batch lengths already run once (eagerly)
        self.pool = None
        self.captures = 0
        self.capture_seconds = 0.0  # host time spent capturing (re-captures included)
        self.eager_steps = 0
        # sum of loss x batch length (float32 where the device has no float64: MPS)
        self.total = torch.zeros((), dtype=torch.float32 if self.device.type == "mps" else torch.float64,
                                 device=self.device)

    @property
    def twin(self):
        twin = self._twin()
        if twin is None:
            raise RuntimeError("this graph runner's twin is gone: a runner trains only while its twin lives")
        return twin

    # -- the step, as captured ---------------------------------------------------------------
    def _body(self, index: torch.Tensor) -> None:
        if self.flat:
            self.flat.grad.zero_()  # backward accumulates into the buffer's views
        with gemm_weight_gradients(self.convs):
            loss = self.twin._loss(self.twin.model(self.xt[index]), self.yt[index])
            loss.backward()
        self.opt.step()
        self.total += loss.detach().to(self.total.dtype) * index.numel()

    def _flat_ready(self) -> None:
        """Before a step runs from Python (warm-up, capture, a CPU replay): the flat optimizer gets
        the source's hyperparameters, and the gradient views are where backward must write."""
        if self.flat:
            self.flat.sync()
            self.flat.attach()

    def _zero_grad(self) -> None:
        if not self.flat:  # the flat buffer's views stay; the step zeroes them
            self.opt.zero_grad(set_to_none=True)

    def _warm_up(self, index: torch.Tensor) -> None:
        """A real step, eagerly, outside capture (on a side stream on the GPU, as CUDA graphs need)."""
        self.eager_steps += 1
        self._flat_ready()
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
        self._flat_ready()  # the hyperparameters a capture bakes in
        if not self.capture:
            return _Graph(_Eager(self, index), hyper, index)
        t0 = time.perf_counter()
        graph = torch.cuda.CUDAGraph()
        self._zero_grad()  # backward inside the graph allocates (and so writes, not adds) every gradient
        with no_collection_during_capture(), kernel_choice(self.deterministic), \
                torch.cuda.graph(graph, pool=self.pool):
            self._body(index)
        self.pool = self.pool or graph.pool()
        self.capture_seconds += time.perf_counter() - t0
        return _Graph(graph, hyper, index)

    def counters(self) -> dict:
        return {"captured": self.capture, "deterministic": self.deterministic, "captures": self.captures, "capture_seconds": round(self.capture_seconds, 4),
                "eager_warm_up_steps": self.eager_steps,
                "flat_optimizer": self.flat is not None, "flat_refusal": self.flat_refusal,
                "gemm_wgrad_convs": len(self.convs)}

    def step(self, index: torch.Tensor) -> None:
        """One optimizer step on the rows ``index`` (a device tensor) of the dataset."""
        length = index.numel()
        if self.flat:  # what a scheduler checks to know its optimizer stepped: the flat one steps for it
            self.source._opt_called = True
        if length not in self.warm:
            self.warm.add(length)
            self._warm_up(index)
            return
        hyper = hyperparameters(self.source)
        entry = self.graphs.get(length)
        if entry is None or entry.hyper != hyper:
            entry = self.graphs[length] = self._capture(length, hyper)
        entry.index.copy_(index)
        if self.capture:
            entry.graph.replay()
        else:  # the step runs now: under the kernel choice a capture would have made
            self._flat_ready()
            with kernel_choice(self.deterministic):
                entry.graph.replay()

    def epoch(self, order: torch.Tensor, batch_size: int) -> float:
        """One pass over ``order`` (device tensor of row indices); the mean loss (one sync)."""
        self.total.zero_()
        for start in range(0, order.numel(), batch_size):
            self.step(order[start:start + batch_size])
        return float(self.total) / order.numel()
