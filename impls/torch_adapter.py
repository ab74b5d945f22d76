"""The ``Twin`` interface for a ``torch.nn.Module`` and its optional recipe."""

from __future__ import annotations

import contextlib
import copy
import functools
import warnings

import numpy as np
from twinbench.impls import frameworks  # noqa: F401  (import order)
import torch

from twinbench.impls import layer_maps, randomness
from twinbench.impls.speed import variants
from twinbench.impls.adapter import (CandidateError, LayerRecord, NoRecipe, ParamLayer, Trace, Twin,
                           batch_order, check_canonical_shape, is_recurrent_cell, layer_kind,
                           nchw_flat_to_nhwc_flat)

_DROPOUT_FUNCTIONS = {"dropout": "element", "dropout1d": "channel", "dropout2d": "channel", "dropout3d": "channel"}

# framework parameter name -> canonical suffix, for the kinds whose tensors map one to one (the
# flattened-features reorder of a dense kernel is applied here); a layer of another kind (a
# recurrent layer) maps its tensors together, by impls/layer_maps.py (_LayerMap).
_CANON = {
    "conv": {"weight": "kernel", "bias": "bias"},
    "dense": {"weight": "kernel", "bias": "bias"},
    "embedding": {"weight": "embeddings"},
    # a BatchNorm's running statistics are state, not parameters: mapped with them, never stepped
    "batchnorm": layer_maps.TORCH_BATCHNORM,
}


def _nhwc_flat_to_nchw_flat(x: np.ndarray, hwc: tuple) -> np.ndarray:
    h, w, c = hwc
    lead = x.shape[:-1]
    return x.reshape(*lead, h, w, c).transpose(*range(len(lead)), -1, -3, -2).reshape(*lead, c * h * w)


def _to_canonical(kind: str, pname: str, value: np.ndarray, flat_hwc) -> np.ndarray:
    if kind == "conv" and pname == "weight" and value.ndim == 4:
        return value.transpose(2, 3, 1, 0)                     # OIHW -> HWIO
    if kind == "dense" and pname == "weight" and value.ndim == 2:
        if flat_hwc is not None and value.shape[1] == int(np.prod(flat_hwc)):
            return _flat_rows(_transposed(value), flat_hwc, to_canonical=True)
        return value.T                                         # (out, in) -> (in, out)
    return value


def _from_canonical(kind: str, pname: str, value: np.ndarray, flat_hwc) -> np.ndarray:
    if kind == "conv" and pname == "weight" and value.ndim == 4:
        return value.transpose(3, 2, 0, 1)                     # HWIO -> OIHW
    if kind == "dense" and pname == "weight" and value.ndim == 2:
        if flat_hwc is not None and value.shape[0] == int(np.prod(flat_hwc)):
            return _transposed(_flat_rows(value, flat_hwc, to_canonical=False))
        return value.T
    return value


def _flat_rows(kernel: np.ndarray, hwc: tuple, to_canonical: bool) -> np.ndarray:
    """A dense kernel (in, out) whose inputs are flattened features: its rows reordered from
    (C, H, W) to (H, W, C) (``to_canonical``) or back; a new C-contiguous array. Whole rows move,
    so the copy is contiguous (0.1 ms for fc1's 9216 x 128, against 3 ms for the same permutation
    of the transposed kernel's columns)."""
    h, w, c = hwc
    if to_canonical:
        return np.ascontiguousarray(kernel).reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(h * w * c, -1)
    return np.ascontiguousarray(kernel).reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(c * h * w, -1)


def _copied(value):
    """A copy of a param group's value, or the value itself where it cannot be copied (a
    scheduler's own bookkeeping: a generator, a lock)."""
    try:
        return copy.deepcopy(value)
    except Exception:
        return value


def _transposed(matrix: np.ndarray) -> np.ndarray:
    """matrix.T as a new C-contiguous array, by torch's blocked transpose (5x numpy's here)."""
    return torch.from_numpy(np.ascontiguousarray(matrix)).T.contiguous().numpy()


# A recurrent cell's parameters (nn.GRUCell, nn.LSTMCell) by the names of a one-layer recurrent layer's.
_CELL_NAMES = {"weight_ih": "weight_ih_l0", "weight_hh": "weight_hh_l0", "bias_ih": "bias_ih_l0", "bias_hh": "bias_hh_l0"}


class _LayerMap:
    """One torch layer mapped onto a reference layer: its parameters by name and both directions
    of its map, {parameter name: value} <-> {canonical name: value}."""

    def __init__(self, ref: str, kind: str, name: str, params: dict, flat, buffers: dict | None = None):
        self.ref, self.kind, self.name, self.flat = ref, kind, name, flat
        if kind in ("gru", "lstm"):  # a cell's parameters under the layer's names, which layer_maps reads
            params = {_CELL_NAMES.get(pname, pname): p for pname, p in params.items()}
        self.params = params  # what the optimizer steps
        self.state = params | (buffers or {})  # what a layer holds: its running statistics too
        if kind == "batchnorm":
            try:
                layer_maps.require_running_stats(self.state)
            except layer_maps.LayerMapError as exc:
                raise CandidateError(f"layer {name}, mapped onto the reference layer {ref}: {exc}") from exc
        if kind in _CANON:
            self.source = {}  # canonical name -> torch name, for messages
            self.stepped = []  # the canonical names of what the optimizer steps (a gradient's names)
            for pname, p in self.state.items():
                suffix = _CANON[kind].get(pname)
                if suffix is None:
                    raise CandidateError(f"parameter {name}.{pname} {tuple(p.shape)} has no "
                                         f"counterpart in the reference layer {ref}")
                self.source[f"{ref}.{suffix}"] = f"{name}.{pname}"
                if pname in params:
                    self.stepped.append(f"{ref}.{suffix}")
        else:
            zeros = {pname: np.zeros(tuple(p.shape), np.float32) for pname, p in params.items()}
            self.source = {c: name for c in self.to_canonical(zeros)}
            self.stepped = list(self.source)

    def to_canonical(self, values: dict) -> dict:
        if self.kind in _CANON:
            return {f"{self.ref}.{_CANON[self.kind][pname]}": _to_canonical(self.kind, pname, v, self.flat)
                    for pname, v in values.items()}
        try:
            canon = layer_maps.torch_to_canonical(self.kind, values)
        except layer_maps.LayerMapError as exc:
            raise CandidateError(f"layer {self.name}, mapped onto the reference layer {self.ref}: {exc}") from exc
        return {f"{self.ref}.{k}": v for k, v in canon.items()}

    def from_canonical(self, values: dict) -> dict:
        if self.kind in _CANON:
            back = {f"{self.ref}.{suffix}": pname for pname, suffix in _CANON[self.kind].items()}
            return {back[c]: _from_canonical(self.kind, back[c], v, self.flat) for c, v in values.items()}
        try:
            return layer_maps.canonical_to_torch(self.kind, {c.rsplit(".", 1)[1]: v for c, v in values.items()})
        except layer_maps.LayerMapError as exc:
            raise CandidateError(f"layer {self.name}, mapped onto the reference layer {self.ref}: {exc}") from exc


class _ParameterUse(torch.overrides.TorchFunctionMode):
    """Sees a layer applied without a module call: ``on_use(owner name, activation, result)`` for
    every torch function given an activation and one of the layer's parameters, or a tensor made
    from them alone (``self.fc.weight.T``). Module hooks see a layer only when it is called as a
    module; a functional forward (``F.conv2d(x, self.conv2.weight, self.conv2.bias)``,
    ``x @ self.fc.weight.T``) uses it without calling it. An activation is a tensor that is not
    made from parameters and, when ``batch`` is given, has the batch as its first axis (a scalar,
    a buffer of another shape, a regulariser's target are not)."""

    def __init__(self, owners, on_use, batch: int | None = None):
        super().__init__()
        self.derived = torch.utils.weak.WeakIdKeyDictionary()  # parameter, or tensor made from them -> owner
        for name, m in owners:
            for p in m.parameters(recurse=False):
                self.derived[p] = name
        self.on_use, self.batch = on_use, batch

    def _batched(self, t) -> bool:
        return t.dim() >= 1 and (self.batch is None or t.shape[0] == self.batch)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        tensors = [v for v in (*args, *kwargs.values()) if isinstance(v, torch.Tensor)]
        owners = [self.derived.get(t) for t in tensors]
        owner = next((o for o in owners if o is not None), None)
        if owner is None or not isinstance(result, torch.Tensor):
            return result
        activation = next((t for t, o in zip(tensors, owners) if o is None and self._batched(t)), None)
        if activation is not None and self._batched(result):
            self.on_use(owner, activation, result)
        elif activation is None and all(o is not None for o in owners):
            self.derived[result] = owner  # the weight transposed, scaled, reshaped: still the layer's
        return result


class TorchTwin(Twin):
    framework = "torch"

    def __init__(self, name, network, model, output="logits", loss=None, optimizer=None,
                 scheduler=None, channels_last=False):
        super().__init__(name, network, output, has_recipe=loss is not None and optimizer is not None)
        self.model = model
        self.loss_fn, self.optimizer_fn, self.scheduler_fn = loss, optimizer, scheduler
        self.opt = None
        self.device = torch.device("cpu")
        self.variant = "eager"  # or "graph" (impls/speed/): compile variants replace the model
        self.graph_deterministic = True  # False: the graph variant may choose nondeterministic kernels
        self.graph_options = {}  # further StepGraphs arguments (flat, gemm_wgrad): the tests force them
        # Opt-in (recipe key "channels_last"): NHWC memory for convs, ~20% faster CPU training with
        # oneDNN, same results to fp32 rounding. Not imposed on candidates: x.view() breaks on it.
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            self.model.to(memory_format=torch.channels_last)

    # -- inputs and outputs ------------------------------------------------------------------
    def _input(self, x: np.ndarray) -> torch.Tensor:
        if self.net.input.kind == "image":
            # As pytorch/examples' pipeline batches them (ToTensor, then default_collate's stack):
            # strides (784, 784, 28, 1). A copy of the NCHW view would give (784, 1, 28, 1), which
            # torch also reads as channels-last (one channel): its convolutions would then return
            # channels-last outputs, and a port that flattens with .view() would raise.
            nchw = torch.from_numpy(np.asarray(x, np.float32)).permute(0, 3, 1, 2)
            t = torch.empty(nchw.shape, memory_format=self.memory_format).copy_(nchw)
        else:
            t = torch.from_numpy(np.asarray(x, dtype=self.net.input.dtype))
        return t.to(self.device)

    def _target(self, y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(y, dtype=self.net.target.dtype)).to(self.device)

    def _call(self, x: np.ndarray):
        try:
            return self.model(self._input(x))
        except Exception as exc:
            raise CandidateError(f"forward raised {type(exc).__name__}: {exc}") from exc

    def forward(self, x, training=False, stream=None):
        with torch.no_grad(), self._shared_randomness(stream if training else None, len(x)):
            self.model.train(training)  # after the context: setting it up may run an eval-mode probe
            out = self._call(x)
        if not isinstance(out, torch.Tensor):
            raise CandidateError(f"forward returned {type(out).__name__}, expected a tensor")
        return out.detach().cpu().numpy()

    def forward_on(self, device, x):
        dev = torch.device("cuda" if device == "gpu" else device)
        home = next(self.model.parameters()).device
        self.model.to(dev).eval()
        try:
            with torch.no_grad():
                out = self.model(self._input(x).to(dev))
            if dev.type == "cuda":
                torch.cuda.synchronize()
            return out.cpu().numpy()
        finally:
            self.model.to(home)

    # -- structure -----------------------------------------------------------------------------
    def _leaves(self):
        leaves = [(n, m) for n, m in self.model.named_modules() if not list(m.children())]
        return [(n or type(m).__name__, m) for n, m in leaves]

    @functools.cached_property
    def _execution_order(self) -> dict:
        """Index of each leaf module in the order a forward pass first calls it."""
        order, hooks = {}, []
        for name, m in self._leaves():
            hooks.append(m.register_forward_hook(lambda mod, i, o, name=name: order.setdefault(name, len(order))))
        try:  # a layer applied functionally counts where it is first used
            with _ParameterUse(self._owners(), lambda owner, a, r: order.setdefault(owner, len(order)), batch=2):
                self.forward(np.ones(self.net.input.batch_shape(2), self.net.input.dtype))
        except CandidateError:
            pass  # fall back to registration order for what did not run
        finally:
            for h in hooks:
                h.remove()
        return order

    def _owners(self):
        """Every module that owns parameters directly, leaf or not (an ``nn.Parameter`` set on the
        model itself counts: it is a parameter the reference may not have)."""
        return [(n or type(m).__name__, m) for n, m in self.model.named_modules()
                if list(m.parameters(recurse=False)) or (_state_buffers(m) and layer_kind(type(m).__name__) == "batchnorm")]

    def _param_modules(self):
        mods = self._owners()
        order = self._execution_order
        return sorted(mods, key=lambda nm: order.get(nm[0], len(order) + mods.index(nm)))

    def _param_layer_objects(self):
        return dict(self._owners())

    @staticmethod
    def _options_of(module):
        plain = (bool, int, float, str, tuple, type(None))
        return {k: v for k, v in vars(module).items() if not k.startswith("_") and k != "training" and isinstance(v, plain)}

    def param_layers(self):
        out = []
        for name, m in self._param_modules():
            params = dict(m.named_parameters(recurse=False))
            trainable = sum(p.numel() for p in params.values() if p.requires_grad)
            frozen = sum(p.numel() for p in params.values() if not p.requires_grad)
            buffers = sum(b.numel() for b in _state_buffers(m).values())
            out.append(ParamLayer(name, layer_kind(type(m).__name__), type(m).__name__, trainable,
                                  frozen + buffers, {k: tuple(v.shape) for k, v in params.items()}, buffers))
        return out

    def trace(self, x, keep_values=False, training=False):
        records, hooks = [], []
        flat = self._flat_inputs()

        def hook(mod, inputs, output, name):
            inp = inputs[0] if inputs else None
            output = _last_state(mod, output)
            rec = LayerRecord(name, layer_kind(type(mod).__name__), type(mod).__name__,
                              None if is_recurrent_cell(type(mod).__name__) else _canon_shape(inp),
                              _canon_shape(output))
            if keep_values:
                rec.in_value = _canon_value(inp, flat.get(name))
                rec.out_value = _canon_value(output, None)
            records.append(rec)

        functional = []  # records of layers used without a module call, as (index in records, owner)
        owners = dict(self._owners())

        def used(owner, activation, result):
            kind = layer_kind(type(owners[owner]).__name__)
            if kind != "other":
                hook(owners[owner], (activation,), result, owner)
                functional.append((len(records) - 1, owner))

        for name, m in self._leaves():
            hooks.append(m.register_forward_hook(functools.partial(hook, name=name)))
        output, error = None, None
        try:
            with _ParameterUse(owners.items(), used, batch=len(x)):
                output = self.forward(x, training=training)
        except CandidateError as exc:
            error = str(exc)
        finally:
            for h in hooks:
                h.remove()
        # A layer called as a module is recorded by its hook (its own parameters' use inside it is not
        # a second layer); one only ever used functionally keeps the records of its uses.
        uses = dict(functional)
        called = {rec.name for i, rec in enumerate(records) if i not in uses}
        drop = {j for j, owner in uses.items() if owner in called}
        return Trace([rec for i, rec in enumerate(records) if i not in drop], output, error)

    def _flat_inputs(self) -> dict:
        """Modules whose input is NCHW-flattened conv features: name -> (H, W, C)."""
        return {name: self.net.flattened_from[ref]
                for name, ref in self.param_refs().items() if ref in self.net.flattened_from}

    # -- shared training-time randomness (impls/randomness.py) ---------------------------------
    def _canonical_noise(self, x: torch.Tensor, channel: bool):
        """(canonical shape, canonical noise shape, to_torch(noise) -> tensor) for an input."""
        shape = tuple(x.shape)
        if x.dim() == 4:   # NCHW <-> NHWC
            n, c, h, w = shape
            canon, noise = (n, h, w, c), ((n, 1, 1, c) if channel else (n, h, w, c))
            return canon, noise, lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))
        if x.dim() == 2 and channel:  # Dropout1d on (N, F) reads it as one unbatched (C, L): one draw per row
            return shape, (shape[0], 1), lambda a: torch.from_numpy(np.ascontiguousarray(a))
        if x.dim() == 3 and channel:  # Dropout1d on (N, C, L): canonical (N, L, C), one draw per (N, C)
            n, c, length = shape
            return (n, length, c), (n, 1, c), lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 2, 1)))
        if x.dim() >= 5 and channel:  # Dropout3d on (N, C, D, H, W): canonical channels-last, one draw per (N, C)
            n, c, rest = shape[0], shape[1], shape[2:]
            back = (0, x.dim() - 1) + tuple(range(1, x.dim() - 1))  # (N, ..., C) -> (N, C, ...)
            return ((n, *rest, c), (n, *(1,) * len(rest), c),
                    lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(back))))
        flat = next((hwc for hwc in self.net.flattened_from.values() if x.dim() == 2
                     and shape[1] == int(np.prod(hwc))), None)
        if flat is not None:  # features flattened (C, H, W) by torch, (H, W, C) canonically
            return shape, shape, lambda a: torch.from_numpy(np.ascontiguousarray(_nhwc_flat_to_nchw_flat(a, flat)))
        return shape, shape, lambda a: torch.from_numpy(np.ascontiguousarray(a))

    def _fed_dropout(self, stream, name, granularity):
        def dropout(input, p=0.5, training=True, inplace=False):
            if not training:
                return input
            canon, noise, to_torch = self._canonical_noise(input, granularity == "channel")
            factor = randomness.apply(stream, "dropout", p, noise, canon, f"F.{name}")
            return input * to_torch(factor).to(input.device, input.dtype)
        return dropout

    @contextlib.contextmanager
    def _shared_randomness(self, stream, batch=None):
        """Training mode with masks from ``stream``: F.dropout/dropout1d/2d/3d (what nn.Dropout* call)
        are fed the stream's masks; parameterised layers advance ``stream.after``; a module after
        which torch's generator advanced is recorded as unrecognised."""
        if stream is None:
            yield
            return
        F = torch.nn.functional
        saved = {name: getattr(F, name) for name in _DROPOUT_FUNCTIONS}
        refs = self.param_refs()
        gen = torch.default_generator
        state = [gen.get_state()]

        def after(module, inputs, output, name):
            if name in refs:
                stream.after = refs[name]
            now = gen.get_state()
            if not torch.equal(now, state[0]):
                stream.unrecognised.append(f"{name} ({type(module).__name__})")
                state[0] = now

        def used(owner, activation, result):  # a layer applied functionally, F.conv2d(x, self.conv2.weight, ...)
            if owner in refs:
                stream.after = refs[owner]

        hooks = [m.register_forward_hook(functools.partial(after, name=n))
                 for n, m in dict(self._leaves() + self._owners()).items()]
        for name, granularity in _DROPOUT_FUNCTIONS.items():
            setattr(F, name, self._fed_dropout(stream, name, granularity))
        try:
            with _ParameterUse(self._owners(), used, batch):
                yield
        finally:
            for name, fn in saved.items():
                setattr(F, name, fn)
            for h in hooks:
                h.remove()
            if not torch.equal(gen.get_state(), state[0]):
                stream.unrecognised.append(f"the forward of {type(self.model).__name__} itself")

    # -- weights -------------------------------------------------------------------------------
    def _layer_maps(self) -> list:
        """A ``_LayerMap`` per parameter layer, in the reference's order."""
        modules = dict(self._owners())
        flat = self._flat_inputs()
        return [_LayerMap(ref, layer.kind, layer.name, dict(modules[layer.name].named_parameters(recurse=False)),
                          flat.get(layer.name), _state_buffers(modules[layer.name]) if layer.kind == "batchnorm" else None)
                for layer, ref in self.param_layer_map()]

    def get_weights(self):
        out = {}
        for lm in self._layer_maps():
            values = lm.to_canonical({n: p.detach().cpu().numpy() for n, p in lm.state.items()})
            for cname, value in values.items():
                check_canonical_shape(cname, lm.source[cname], value.shape, self.network)
                out[cname] = value.copy()
        self._check_names(set(out))
        return out

    def set_weights(self, weights):
        maps = self._layer_maps()
        self._check_names({c for lm in maps for c in lm.source})
        for lm in maps:
            given = {}
            for cname, tname in lm.source.items():
                if cname not in weights:
                    raise CandidateError(f"no value given for {cname} (torch parameter {tname})")
                given[cname] = np.asarray(weights[cname])
                check_canonical_shape(cname, tname, given[cname].shape, self.network, given=True)
            for pname, value in lm.from_canonical(given).items():
                p = lm.state[pname]
                if tuple(value.shape) != tuple(p.shape):
                    tname = f"{lm.name}.{pname}"
                    label = next((c for c, t in lm.source.items() if t == tname), lm.name)
                    raise CandidateError(f"{label}: converted shape {value.shape} does not fit torch "
                                         f"parameter {tname} {tuple(p.shape)}")
                with torch.no_grad():
                    p.copy_(torch.from_numpy(np.ascontiguousarray(value)).to(p.dtype))

    # -- recipe --------------------------------------------------------------------------------
    def _need_recipe(self):
        if not self.has_recipe:
            raise NoRecipe(f"{self.name} is a model-only candidate (no loss/optimizer given)")

    def loss_value(self, outputs, y):
        self._need_recipe()
        with torch.no_grad():
            return float(self._loss(torch.from_numpy(np.asarray(outputs, np.float32)).to(self.device), self._target(y)))

    def _loss(self, outputs, targets):
        try:
            return self.loss_fn(outputs, targets)
        except Exception as exc:
            raise CandidateError(f"the recipe's loss raised {type(exc).__name__}: {exc}") from exc

    def _backward(self, x, y, training, stream):
        """The recipe's loss on a batch, its gradients left on the parameters."""
        self._need_recipe()
        with self._shared_randomness(stream if training else None, len(x)):
            self.model.train(training)
            self.model.zero_grad(set_to_none=True)
            out = self._call(x)
        loss = self._loss(out, self._target(y))
        loss.backward()
        for name, p in self.model.named_parameters():
            if p.grad is not None and p.grad.layout != torch.strided:
                raise CandidateError(f"parameter {name} got a {p.grad.layout} gradient: the suite compares dense "
                                     "gradients in canonical layout; build the layer dense (nn.Embedding(..., "
                                     "sparse=False)) and use a dense optimizer")
        return float(loss.detach())

    def loss_and_grads(self, x, y, training=False, stream=None):
        loss = self._backward(x, y, training, stream)
        grads = {}
        for lm in self._layer_maps():
            grads.update(lm.to_canonical({n: (p.grad if p.grad is not None else torch.zeros_like(p)).detach().cpu().numpy()
                                          for n, p in lm.params.items()}))
        return loss, grads

    # train_steps without the canonical round trip (a permutation of the same values: 0.9 ms of
    # copies in a ~31 ms MNIST step): the optimizer steps on the gradients backward left, a
    # parameter that got none stepping on zeros as it would through optimizer_step, in the same
    # order of work (the parameters mapped after backward, the optimizer made after that). Bit
    # for bit the same run for elementwise optimizers (suites/test_training.py); the gradients
    # keep the parameters' strides, where the round trip made them contiguous.
    def _step_grads(self, x, y, training=False, stream=None):
        loss = self._backward(x, y, training, stream)
        return loss, [p for lm in self._layer_maps() for p in lm.params.values()]

    def _step_apply(self, params) -> None:
        opt = self._optimizer()
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        opt.step()

    def _optimizer(self):
        if self.opt is None:
            try:
                self.opt = self.optimizer_fn(self.model.parameters())
                self.sched = self.scheduler_fn(self.opt) if self.scheduler_fn else None
            except Exception as exc:
                raise CandidateError(f"the recipe's optimizer or scheduler raised {type(exc).__name__}: {exc}") from exc
            variants.prepare_optimizer(self, self.opt)
        return self.opt

    def optimizer_step(self, grads):
        self._need_recipe()
        opt = self._optimizer()
        for lm in self._layer_maps():
            for pname, g in lm.from_canonical({c: np.asarray(grads[c]) for c in lm.stepped}).items():
                p = lm.params[pname]
                p.grad = torch.tensor(g, dtype=p.dtype, device=p.device)  # a copy: an optimizer may clip it in place
        opt.step()

    def learning_rates(self, steps_per_epoch, epochs):
        return next(iter(self.learning_rates_by_group(steps_per_epoch, epochs).values()))

    def learning_rates_by_group(self, steps_per_epoch, epochs):
        """Every param group's learning rate at every step (the scheduler stepped per epoch),
        each group named by the parameters it holds."""
        held, epochs_settings = self.group_settings_by_epoch(epochs)
        changed = next((e for e, groups in enumerate(epochs_settings) if len(groups) != len(held)), None)
        if changed is not None:
            raise CandidateError(f"the recipe's scheduler changes the optimizer's param groups: "
                                 f"{len(epochs_settings[changed])} from epoch {changed}, {len(held)} when built; "
                                 "build every param group with the optimizer")
        labels = [", ".join(names[:4]) + (", ..." if len(names) > 4 else "") for names in held]
        if len(labels) == 1:
            labels = ["all parameters"]
        return {label: np.repeat(np.asarray([groups[i]["lr"] for groups in epochs_settings], dtype=np.float64),
                                 steps_per_epoch)
                for i, label in enumerate(labels)}

    def group_settings_by_epoch(self, epochs):
        """([the parameters each param group holds when built], [[each group's settings but its
        parameters] per epoch]) for the epochs of the budget: a throwaway optimizer built with the
        recipe's scheduler, which is stepped once per epoch as ``fit_epoch`` steps it. Every
        setting a scheduler changes (a learning rate, OneCycleLR's momentum or betas, a
        hand-written scheduler's weight decay) is seen at the epoch it changes. No optimizer step
        is taken, so a scheduler that decides from the optimizer's state (its step count) is not
        seen here. A value that cannot be copied (a scheduler's own generator) is kept as it is."""
        self._need_recipe()
        names = {id(p): n for n, p in self.model.named_parameters()}
        out = []
        try:
            opt = self.optimizer_fn(self.model.parameters())
            held = [[names.get(id(p), "?") for p in group["params"]] for group in opt.param_groups]
            sched = self.scheduler_fn(opt) if self.scheduler_fn else None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()"
                for _ in range(epochs):
                    out.append([{k: _copied(v) for k, v in group.items() if k != "params"}
                                for group in opt.param_groups])
                    if sched is not None:
                        sched.step()
        except Exception as exc:
            raise CandidateError(f"the recipe's optimizer or scheduler raised {type(exc).__name__}: {exc}") from exc
        return held, out

    def fit_epoch(self, x, y, epoch, batch_size, seed):
        self._need_recipe()
        opt = self._optimizer()
        if getattr(self, "_fit_cache", (None,))[0] is not x:  # tensors built once per dataset
            xt, yt = self._input(x), self._target(y)
            self._fit_cache = (x, xt, yt, variants.epoch_runner(self, xt, yt))
        _, xt, yt, graphs = self._fit_cache
        order = torch.from_numpy(batch_order(len(x), epoch, seed)).to(self.device)
        self.model.train(True)
        if graphs is not None:
            mean = graphs.epoch(order, batch_size)
            if self.sched is not None:
                self.sched.step()
            return mean
        total = torch.zeros((), dtype=torch.float32 if self.device.type == "mps" else torch.float64,
                            device=self.device)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = self._loss(self.model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)
        if self.sched is not None:
            self.sched.step()
        return float(total) / len(order)

    @property
    def step_graphs(self):
        """The graph variant's runner (impls/speed/torch_graph.StepGraphs) for the dataset trained last;
        None for eager training."""
        return getattr(self, "_fit_cache", (None,) * 4)[3]

    def place(self, device):
        dev = torch.device({"gpu": "cuda"}.get(device, device))
        self.model.to(dev)
        self.device = dev
        self.opt = None  # optimizer state lives with the parameters: rebuilt on the device
        self._drop_fit_state()

    def _drop_fit_state(self) -> None:
        """Forget fit_epoch's device tensors and graph runner, and the graph variant's flat buffer
        with its optimizer (torch_graph.FlatParameters) and the gradient views into it."""
        self.__dict__.pop("_fit_cache", None)
        if self.__dict__.pop("_graph_flat", None) is not None:
            self.model.zero_grad(set_to_none=True)

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        elif self.device.type == "mps":
            torch.mps.synchronize()

    def inference_fn(self, x):
        xt = self._input(x)
        self.model.eval()

        def run():
            with torch.no_grad():
                out = self.model(xt)
            self._sync()
            return out

        return run

    def use_variant(self, variant):
        variants.use_torch_variant(self, variant)  # impls/speed/variants.py

    def summary(self):
        import torchinfo

        x = self._input(np.zeros(self.net.input.batch_shape(1)))
        stats = torchinfo.summary(self.model, input_data=[x], verbose=0, depth=3,
                                  col_names=("input_size", "output_size", "num_params"))
        return str(stats)

    def save(self, path, whole_model=True):
        path = str(path) + ".pt"
        torch.save(self.model.state_dict(), path)
        return path

    def load(self, path):
        self.model.load_state_dict(torch.load(path, weights_only=True))


def _state_buffers(module) -> dict:
    """A module's own floating-point buffers by name (a BatchNorm's running statistics; not its
    integer ``num_batches_tracked``, a step counter with no Keras counterpart)."""
    return {n: b for n, b in module.named_buffers(recurse=False) if b is not None and b.is_floating_point()}


def _last_state(module, output):
    """A recurrent layer's output as the layers of both frameworks are compared: its last step,
    (batch, units). torch's returns (sequence, state) whatever the use; Keras's returns the last
    step or the sequence by ``return_sequences``. Other outputs are returned as they are."""
    if not (isinstance(output, tuple) and output and isinstance(output[0], torch.Tensor)
            and layer_kind(type(module).__name__) in ("gru", "lstm")):
        return output
    sequence = output[0]
    if sequence.dim() != 3:
        return sequence
    return sequence[:, -1] if getattr(module, "batch_first", False) else sequence[-1]


def _canon_shape(t):
    if not isinstance(t, torch.Tensor):
        return None
    shape = tuple(t.shape)
    return (shape[0], *shape[2:], shape[1]) if len(shape) == 4 else shape


def _canon_value(t, flat_hwc):
    if not isinstance(t, torch.Tensor):
        return None
    v = t.detach().cpu().numpy()
    if v.ndim == 4:
        return v.transpose(0, 2, 3, 1)
    if flat_hwc is not None and v.ndim == 2 and v.shape[1] == int(np.prod(flat_hwc)):
        return nchw_flat_to_nhwc_flat(v, flat_hwc)
    return v
