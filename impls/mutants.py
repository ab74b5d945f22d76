"""Generated mutants: one fault each, applied to the primary reference of each network in each framework.

The detection self-test (suites/test_detection.py) judges every mutant with every check the suite
runs on a user's ``--impl``, exactly as it judges the hand-written corpus in impls/known_bad. A mutant
is built by a zero-argument factory (the ``--impl`` contract), reached as ``impls.mutants:<key>``.

Each mutant has a stable id, ``<framework>-<network>.<operator>@<site>``, and one operator family:

- ``hyperparameter``: a recipe constant x0.9 or x1.1 (for Adam's betas, 1 - beta scaled), or left at
  Keras's default (torch's defaults are the reference's own values);
- ``structure``: an activation removed or replaced, a bias removed, the pooling's kind, size or stride,
  the flatten order, a kernel size, the padding;
- ``randomness``: a dropout rate +-0.05, element-wise <-> channel-wise, a dropout moved or removed, an
  extra dropout or noise op;
- ``loss/optimizer``: label smoothing, ``reduction="sum"``, class weights, weight decay (coupled and
  decoupled), an L1 or L2 penalty on one layer, gradient clipping, AMSGrad, probabilities fed to a
  loss that expects logits;
- ``data``: padding counted or masked in the tweets' mean, ``padding_idx=0``, the wrong sequence axis.

Operators by layer kind apply to every network whose spec has a layer of the kind, with no list of
networks: a GRU's (gate order, reset formula, recurrent bias, direction, pooling of its states,
padding side, its dropouts) and a BatchNorm's (momentum copied across the frameworks' two
conventions or left at Keras's default, epsilon at Keras's default, no gamma or beta, running
statistics untracked, batch statistics in evaluation, the layer frozen, moved after its activation).

``equivalent`` mutants are the same function and training written another way: the suite must accept
them. Each names its reason.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

FAMILIES = ("hyperparameter", "structure", "randomness", "loss/optimizer", "data")


@dataclass(frozen=True)
class Mutant:
    id: str             # "<framework>-<network>.<operator>@<site>", usable in file names
    network: str
    framework: str
    family: str         # one of FAMILIES, or "equivalent"
    doc: str            # one sentence: what was changed
    build: Callable     # the zero-argument factory
    equivalent: str = ""  # why the suite must accept it; "" for a fault

    @property
    def key(self) -> str:
        """The factory's attribute name in this module (``impls.mutants:<key>``)."""
        return "m_" + "".join(c if c.isalnum() else "_" for c in self.id)


_MUTANTS: list = []


def _add(framework, network, family, operator, site, doc, build, equivalent=""):
    _MUTANTS.append(Mutant(f"{framework}-{network}.{operator}@{site}", network, framework, family, doc, build,
                           equivalent))


# ------------------------------------------------------------------------------------------
# torch: the "sequential" reference, its layers edited by name; the recipe dict edited by key
# ------------------------------------------------------------------------------------------
def _reference_module(network, framework):
    """The module of the network's sequential reference builder (its spec names it)."""
    import importlib

    from twinbench.impls import networks

    return importlib.import_module(networks.get(network).builders[framework]["sequential"].split(":")[0])


def _torch_ref(network):
    return _reference_module(network, "torch")


def _resize_head(items, network):
    """After a shape-changing edit, give fc1 the in-features the new layers produce (a port that
    changes a kernel or a pool resizes its dense layer too; the parameter checks see the change)."""
    import torch
    import torch.nn as nn

    if network != "mnist_cnn":
        return items
    names = [n for n, _ in items]
    with torch.no_grad():
        x = torch.zeros(1, 1, 28, 28)
        for name, layer in items[:names.index("fc1")]:
            x = layer(x)
    fc1 = dict(items)["fc1"]
    if x.shape[1] != fc1.in_features:
        items[names.index("fc1")] = ("fc1", nn.Linear(x.shape[1], fc1.out_features, bias=fc1.bias is not None))
    return items


def _torch(network, layers=None, recipe=None):
    """A factory: the torch reference (sequential style) with ``layers(items)`` applied to its
    (name, module) list and ``recipe(recipe_dict, model)`` to its recipe."""
    def factory():
        import torch.nn as nn

        ref = _torch_ref(network)
        items = list(ref.build_sequential().named_children())
        if layers is not None:
            items = _resize_head(layers(items), network)
        model = nn.Sequential(OrderedDict(items))
        out = ref.recipe(model)
        if recipe is not None:
            recipe(out, model)
        return out
    return factory


def _replace(name, make):
    def edit(items):
        return [(n, make(m) if n == name else m) for n, m in items]
    return edit


def _remove(name):
    return lambda items: [(n, m) for n, m in items if n != name]


def _insert_after(name, new_name, make):
    def edit(items):
        out = []
        for n, m in items:
            out.append((n, m))
            if n == name:
                out.append((new_name, make()))
        return out
    return edit


def _swap(a, b):
    """Exchange the positions of two layers."""
    def edit(items):
        d = dict(items)
        order = [b if n == a else a if n == b else n for n, _ in items]
        return [(n, d[n]) for n in order]
    return edit


def _adadelta(network) -> bool:
    from twinbench.impls import networks

    return networks.get(network).optimizer["kind"] == "adadelta"


def _classes(network) -> bool:
    """Whether the network's target is a class id (softmax cross-entropy) rather than a binary label."""
    from twinbench.impls import networks

    return networks.get(network).target.kind == "classes"


def _torch_optimizer(network, **changes):
    """The reference optimizer with some hyperparameters changed."""
    ref = _torch_ref(network)

    def make(params):
        import torch

        if _adadelta(network):
            kw = dict(lr=ref.LR, rho=ref.RHO, eps=ref.EPS, weight_decay=ref.WEIGHT_DECAY) | changes
            return torch.optim.Adadelta(params, **kw)
        kw = dict(lr=ref.LR, betas=ref.BETAS, epsilon_hat=ref.EPSILON_HAT) | changes
        return ref.AdamEpsilonHat(params, **kw)
    return lambda r, model: r.update(optimizer=make)


def _torch_optimizer_class(network, make_class, **kwargs):
    """A subclass of the reference optimizer (``make_class(base)``), built with the reference's values."""
    ref = _torch_ref(network)

    def make(params):
        import torch

        if _adadelta(network):
            cls = make_class(torch.optim.Adadelta)
            return cls(params, lr=ref.LR, rho=ref.RHO, eps=ref.EPS, **kwargs)
        cls = make_class(ref.AdamEpsilonHat)
        return cls(params, lr=ref.LR, betas=ref.BETAS, epsilon_hat=ref.EPSILON_HAT, **kwargs)
    return lambda r, model: r.update(optimizer=make)


def _decoupled_decay(wd):
    def make_class(base):
        import torch

        class DecoupledDecay(base):
            @torch.no_grad()
            def step(self, closure=None):
                for group in self.param_groups:
                    for p in group["params"]:
                        p.mul_(1 - group["lr"] * wd)
                return super().step(closure)
        return DecoupledDecay
    return make_class


def _clipped(max_norm):
    def make_class(base):
        import torch

        class Clipped(base):
            @torch.no_grad()
            def step(self, closure=None):
                params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
                torch.nn.utils.clip_grad_norm_(params, max_norm)
                return super().step(closure)
        return Clipped
    return make_class


def _torch_loss(network, **kw):
    """The reference loss with keyword changes (label_smoothing, reduction, weight, pos_weight)."""
    def edit(r, model):
        import torch
        import torch.nn.functional as F

        if _classes(network):
            args = dict(reduction="mean") | kw
            if "weight" in args:
                args["weight"] = torch.tensor(args["weight"], dtype=torch.float32)
            r["loss"] = lambda out, y: F.cross_entropy(out, y, **args)
        else:
            args = dict(reduction="mean") | kw
            smooth = args.pop("label_smoothing", 0.0)
            if "pos_weight" in args:
                args["pos_weight"] = torch.tensor([args["pos_weight"]])

            def bce(out, y):
                t = y.reshape(out.shape)
                return F.binary_cross_entropy_with_logits(out, t * (1 - smooth) + 0.5 * smooth, **args)
            r["loss"] = bce
    return edit


def _torch_penalty(layer, kind, lam):
    def edit(r, model):
        base = r["loss"]
        weight = getattr(model, layer).weight
        r["loss"] = (lambda out, y: base(out, y) + lam * weight.pow(2).sum()) if kind == "l2" else \
            (lambda out, y: base(out, y) + lam * weight.abs().sum())
    return edit


def _gaussian_noise(std):
    import torch
    import torch.nn as nn

    class GaussianNoise(nn.Module):
        """x + N(0, std) in training: a random op the suite cannot feed, so it must refuse it."""

        def forward(self, x):
            return x + std * torch.randn_like(x) if self.training else x
    return GaussianNoise()


def _nhwc_flatten():
    import torch.nn as nn

    class FlattenNHWC(nn.Module):
        def forward(self, x):
            return x.permute(0, 2, 3, 1).flatten(1)
    return FlattenNHWC()


def _torch_pool(kind):
    import torch.nn as nn

    class Pool(nn.Module):
        def forward(self, x):
            if kind == "max":
                return x.max(dim=1).values
            if kind == "sum":
                return x.sum(dim=1)
            if kind == "sum/42":
                return x.sum(dim=1) / 42
            return x.mean(dim=2)  # the wrong axis
    return Pool()


def _torch_mnist():
    import torch.nn as nn

    net, ref = "mnist_cnn", _torch_ref("mnist_cnn")
    add = lambda family, op, site, doc, layers=None, recipe=None, eq="": _add(  # noqa: E731
        "torch", net, family, op, site, doc, _torch(net, layers, recipe), eq)
    for name, value, keras_default in (("lr", ref.LR, 0.001), ("rho", ref.RHO, 0.95), ("eps", ref.EPS, 1e-7)):
        for label, v in (("-x0.9", value * 0.9), ("-x1.1", value * 1.1), ("=keras-default", keras_default)):
            add("hyperparameter", f"{name}{label}", "optimizer",
                f"Adadelta {name} {v:g} where the reference has {value:g}", recipe=_torch_optimizer(net, **{name: v}))
    for label, gamma in (("-x0.9", ref.GAMMA * 0.9), ("-x1.1", ref.GAMMA * 1.1), ("=steplr-default", 0.1)):
        add("hyperparameter", f"gamma{label}", "scheduler", f"StepLR gamma {gamma:g} (reference 0.7)",
            recipe=lambda r, m, g=gamma: r.update(scheduler=lambda opt: _steplr(opt, 1, g)))
    add("hyperparameter", "step_size=2", "scheduler", "StepLR every 2 epochs (reference: every epoch)",
        recipe=lambda r, m: r.update(scheduler=lambda opt: _steplr(opt, 2, ref.GAMMA)))
    for label, bs in (("-x0.9", 58), ("-x1.1", 70), ("=keras-default", 32)):
        add("hyperparameter", f"batch_size{label}", "recipe", f"batch size {bs} (reference 64)",
            recipe=lambda r, m, b=bs: r.update(batch_size=b))
    for relu in ("relu1", "relu2", "relu3"):
        add("structure", "activation-removed", relu, f"{relu} removed", layers=_remove(relu))
        for act, make in (("gelu", nn.GELU), ("tanh", nn.Tanh), ("leaky_relu", nn.LeakyReLU)):
            add("structure", f"relu-to-{act}", relu, f"{relu} replaced by {make.__name__}",
                layers=_replace(relu, lambda m, mk=make: mk()))
    for layer in ("conv1", "conv2", "fc1", "fc2"):
        add("structure", "bias-removed", layer, f"{layer} without a bias", layers=_replace(layer, _without_bias))
    add("structure", "pool-kind=avg", "pool", "AvgPool2d(2) where the reference max-pools",
        layers=_replace("pool", lambda m: nn.AvgPool2d(2, 2)))
    add("structure", "pool-size=3", "pool", "MaxPool2d(3, stride 2)", layers=_replace("pool", lambda m: nn.MaxPool2d(3, 2)))
    add("structure", "pool-stride=1", "pool", "MaxPool2d(2, stride 1)", layers=_replace("pool", lambda m: nn.MaxPool2d(2, 1)))
    add("structure", "flatten-order=nhwc", "flatten", "flattened channel-last, as Keras does",
        layers=_replace("flatten", lambda m: _nhwc_flatten()))
    for conv, cin, cout in (("conv1", 1, 32), ("conv2", 32, 64)):
        add("structure", "kernel=5", conv, f"{conv} kernel 5 (reference 3)",
            layers=_replace(conv, lambda m, i=cin, o=cout: nn.Conv2d(i, o, 5)))
        add("structure", "padding=same", conv, f"{conv} padded 'same' (reference 'valid')",
            layers=_replace(conv, lambda m, i=cin, o=cout: nn.Conv2d(i, o, 3, padding=1)))
    for drop, p in (("dropout1", 0.25), ("dropout2", 0.5)):
        for delta in (-0.05, 0.05):
            add("randomness", f"rate{delta:+.2f}", drop, f"{drop} rate {p + delta:g} (reference {p:g})",
                layers=_replace(drop, lambda m, q=p + delta: nn.Dropout(q)))
        add("randomness", "dropout-removed", drop, f"{drop} removed", layers=_remove(drop))
    add("randomness", "channel-wise", "dropout1", "Dropout2d(0.25): whole channels dropped",
        layers=_replace("dropout1", lambda m: nn.Dropout2d(0.25)))
    add("randomness", "per-sample", "dropout2", "Dropout1d(0.5) on (N, 128): whole rows dropped",
        layers=_replace("dropout2", lambda m: nn.Dropout1d(0.5)))
    add("randomness", "moved-before-pool", "dropout1", "dropout1 before the max-pool", layers=_swap("pool", "dropout1"))
    add("randomness", "moved-after-fc2", "dropout2", "dropout2 after fc2, on the logits", layers=_swap("dropout2", "fc2"))
    add("randomness", "extra-dropout", "relu1", "an extra Dropout(0.1) after conv1's ReLU",
        layers=_insert_after("relu1", "dropout0", lambda: nn.Dropout(0.1)))
    add("randomness", "gaussian-noise", "relu3", "x + N(0, 0.1) after fc1's ReLU in training",
        layers=_insert_after("relu3", "noise", lambda: _gaussian_noise(0.1)))
    add("loss/optimizer", "label-smoothing=0.05", "loss", "cross-entropy with label smoothing 0.05",
        recipe=_torch_loss(net, label_smoothing=0.05))
    add("loss/optimizer", "reduction=sum", "loss", "cross-entropy summed over the batch", recipe=_torch_loss(net, reduction="sum"))
    add("loss/optimizer", "class-weights", "loss", "class 0 weighted 1.2 in the cross-entropy",
        recipe=_torch_loss(net, weight=[1.2] + [1.0] * 9))
    add("loss/optimizer", "weight-decay-coupled=1e-4", "optimizer", "Adadelta weight_decay 1e-4",
        recipe=_torch_optimizer(net, weight_decay=1e-4))
    add("loss/optimizer", "weight-decay-decoupled=1e-4", "optimizer", "decoupled weight decay 1e-4 (p *= 1 - lr*wd)",
        recipe=_torch_optimizer_class(net, _decoupled_decay(1e-4)))
    add("loss/optimizer", "l2=1e-4", "fc1", "1e-4 * ||fc1.weight||^2 added to the loss", recipe=_torch_penalty("fc1", "l2", 1e-4))
    add("loss/optimizer", "l1=1e-5", "fc1", "1e-5 * |fc1.weight| added to the loss", recipe=_torch_penalty("fc1", "l1", 1e-5))
    add("loss/optimizer", "clip-norm=0.5", "optimizer", "gradients clipped to global norm 0.5",
        recipe=_torch_optimizer_class(net, _clipped(0.5)))
    add("loss/optimizer", "probabilities-as-logits", "fc2", "a softmax after fc2, fed to cross-entropy as logits",
        layers=_insert_after("fc2", "softmax", lambda: nn.Softmax(dim=1)))
    add("equivalent", "dropout-before-relu", "dropout2", "dropout2 moved before fc1's ReLU",
        layers=_swap("relu3", "dropout2"),
        eq="dropout scales by a non-negative mask, and ReLU commutes with that: relu(m*x) = m*relu(x)")
    add("equivalent", "log-softmax-as-logits", "fc2", "a LogSoftmax after fc2, the output still declared logits",
        layers=_insert_after("fc2", "log_softmax", lambda: nn.LogSoftmax(dim=1)),
        eq="logits are defined up to a per-row constant; log-softmax is one choice of it")
    add("equivalent", "schedule-as-lambda", "scheduler", "LambdaLR(0.7 ** epoch) instead of StepLR",
        recipe=lambda r, m: r.update(scheduler=_lambda_lr), eq="the same learning rate at every step, written another way")


def _steplr(opt, step_size, gamma):
    from torch.optim.lr_scheduler import StepLR

    return StepLR(opt, step_size=step_size, gamma=gamma)


def _lambda_lr(opt):
    from torch.optim.lr_scheduler import LambdaLR

    return LambdaLR(opt, lambda epoch: 0.7 ** epoch)


def _without_bias(layer):
    import torch.nn as nn

    if isinstance(layer, nn.Conv2d):
        return nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, bias=False)
    return nn.Linear(layer.in_features, layer.out_features, bias=False)


def _torch_tweets():
    import torch.nn as nn

    net, ref = "tweet_fasttext", _torch_ref("tweet_fasttext")
    add = lambda family, op, site, doc, layers=None, recipe=None, eq="": _add(  # noqa: E731
        "torch", net, family, op, site, doc, _torch(net, layers, recipe), eq)
    b1, b2 = ref.BETAS
    for label, f in (("-x0.9", 0.9), ("-x1.1", 1.1)):
        add("hyperparameter", f"lr{label}", "optimizer", f"Adam lr {ref.LR * f:g}", recipe=_torch_optimizer(net, lr=ref.LR * f))
        add("hyperparameter", f"beta1={1 - (1 - b1) * f:g}", "optimizer", f"Adam beta1 {1 - (1 - b1) * f:g} (1 - beta1 x{f:g})",
            recipe=_torch_optimizer(net, betas=(1 - (1 - b1) * f, b2)))
        add("hyperparameter", f"beta2={1 - (1 - b2) * f:g}", "optimizer", f"Adam beta2 {1 - (1 - b2) * f:g} (1 - beta2 x{f:g})",
            recipe=_torch_optimizer(net, betas=(b1, 1 - (1 - b2) * f)))
        add("hyperparameter", f"epsilon-hat{label}", "optimizer", f"Adam epsilon-hat {ref.EPSILON_HAT * f:g}",
            recipe=_torch_optimizer(net, epsilon_hat=ref.EPSILON_HAT * f))
    add("hyperparameter", "eps=torch-default", "optimizer", "plain torch Adam (eps 1e-8 added to sqrt(v-hat))",
        recipe=lambda r, m: r.update(optimizer=lambda p: __import__("torch").optim.Adam(p, lr=ref.LR)))
    for label, bs in (("-x0.9", 29), ("-x1.1", 35), ("=torch-default", 1)):
        add("hyperparameter", f"batch_size{label}", "recipe", f"batch size {bs} (reference 32)",
            recipe=lambda r, m, b=bs: r.update(batch_size=b))
    add("structure", "bias-removed", "fc", "fc without a bias",
        layers=_replace("fc", lambda m: nn.Linear(50, 1, bias=False)))
    add("structure", "pool-kind=max", "pool", "max over the positions instead of the mean",
        layers=_replace("pool", lambda m: _torch_pool("max")))
    add("structure", "pool-kind=sum", "pool", "sum over the positions instead of the mean",
        layers=_replace("pool", lambda m: _torch_pool("sum")))
    add("structure", "activation-added", "pool", "a ReLU after the mean",
        layers=_insert_after("pool", "relu", nn.ReLU))
    add("randomness", "extra-dropout", "fc", "Dropout(0.1) before the head",
        layers=_insert_after("pool", "dropout", lambda: nn.Dropout(0.1)))
    add("randomness", "embedding-dropout", "embedding", "Dropout(0.1) on the embeddings",
        layers=_insert_after("embedding", "dropout", lambda: nn.Dropout(0.1)))
    add("randomness", "gaussian-noise", "embedding", "x + N(0, 0.1) on the embeddings in training",
        layers=_insert_after("embedding", "noise", lambda: _gaussian_noise(0.1)))
    add("loss/optimizer", "label-smoothing=0.05", "loss", "BCE with label smoothing 0.05",
        recipe=_torch_loss(net, label_smoothing=0.05))
    add("loss/optimizer", "reduction=sum", "loss", "BCE summed over the batch", recipe=_torch_loss(net, reduction="sum"))
    add("loss/optimizer", "class-weights", "loss", "positives weighted 1.2 (pos_weight)", recipe=_torch_loss(net, pos_weight=1.2))
    add("loss/optimizer", "weight-decay-coupled=1e-4", "optimizer", "Adam weight_decay 1e-4 (added to the gradient)",
        recipe=_torch_adam_group(weight_decay=1e-4))
    add("loss/optimizer", "weight-decay-decoupled=1e-4", "optimizer", "decoupled weight decay 1e-4 (AdamW)",
        recipe=_torch_optimizer_class(net, _decoupled_decay(1e-4)))
    add("loss/optimizer", "l2=1e-3", "fc", "1e-3 * ||fc.weight||^2 added to the loss", recipe=_torch_penalty("fc", "l2", 1e-3))
    add("loss/optimizer", "l1=1e-3", "fc", "1e-3 * |fc.weight| added to the loss", recipe=_torch_penalty("fc", "l1", 1e-3))
    add("loss/optimizer", "clip-norm=0.1", "optimizer", "gradients clipped to global norm 0.1",
        recipe=_torch_optimizer_class(net, _clipped(0.1)))
    add("loss/optimizer", "amsgrad", "optimizer", "Adam with AMSGrad", recipe=_torch_adam_group(amsgrad=True))
    add("loss/optimizer", "probabilities-as-logits", "fc", "a sigmoid after fc, fed to BCE-with-logits",
        layers=_insert_after("fc", "sigmoid", nn.Sigmoid))
    add("data", "padding-idx=0", "embedding", "nn.Embedding(padding_idx=0): row 0 never trained",
        layers=_replace("embedding", lambda m: nn.Embedding(20000, 50, padding_idx=0)))
    add("data", "wrong-axis", "pool", "the mean over the embedding axis; the head resized to 42 inputs",
        layers=lambda items: [(n, _torch_pool("axis") if n == "pool" else nn.Linear(42, 1) if n == "fc" else m)
                              for n, m in items])
    add("data", "masked-mean", "pool", "padding (all-zero id 0 embeddings) left out of the mean",
        layers=_masked_embedding_mean)
    add("equivalent", "mean-as-sum/42", "pool", "the mean written as a sum divided by 42",
        layers=_replace("pool", lambda m: _torch_pool("sum/42")), eq="sum/42 is the mean over 42 positions")


def _masked_embedding_mean(items):
    """Embedding -> masked mean over the non-padding ids (one module that sees the ids)."""
    import torch.nn as nn

    emb = dict(items)["embedding"]

    class MaskedMean(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = emb

        def forward(self, ids):
            keep = (ids != 0).unsqueeze(-1).float()
            return (self.embedding(ids) * keep).sum(1) / keep.sum(1).clamp(min=1)
    return [("embedding", MaskedMean()), ("fc", dict(items)["fc"])]


def _torch_adam_group(**settings):
    """The reference's Adam (epsilon-hat) with param-group settings changed, e.g. weight_decay
    (coupled: added to the gradient) or amsgrad."""
    ref = _torch_ref("tweet_fasttext")

    def make(params):
        opt = ref.AdamEpsilonHat(params, lr=ref.LR, betas=ref.BETAS, epsilon_hat=ref.EPSILON_HAT)
        for group in opt.param_groups:
            group.update(settings)
        return opt
    return lambda r, model: r.update(optimizer=make)


# ------------------------------------------------------------------------------------------
# Keras: the "sequential" reference, its layer list edited by name; compile() arguments edited
# ------------------------------------------------------------------------------------------
def _keras_ref(network):
    return _reference_module(network, "keras")


def _keras(network, layers=None, optimizer=None, loss=None):
    """A factory: the Keras reference with ``layers(list)`` applied to its layers, and the compiled
    optimizer and loss replaced by ``optimizer()`` / ``loss()`` where given."""
    def factory():
        import keras

        from twinbench.impls import networks

        ref = _keras_ref(network)
        stack = ref.the_layers()
        if layers is not None:
            stack = layers({layer.name: layer for layer in stack}, stack)
        spec = networks.get(network).input
        shape, dtype = spec.shape, ("int32" if spec.kind == "tokens" else "float32")
        model = keras.Sequential([keras.Input(shape, dtype=dtype)] + stack)
        ref.compile_recipe(model)
        if optimizer is not None or loss is not None:
            model.compile(optimizer=optimizer() if optimizer else model.optimizer,
                          loss=loss() if loss else model.loss, metrics=None)
        return model
    return factory


def _k_replace(name, make):
    return lambda by_name, stack: [make(layer) if layer.name == name else layer for layer in stack]


def _k_remove(name):
    return lambda by_name, stack: [layer for layer in stack if layer.name != name]


def _k_insert_after(name, make):
    def edit(by_name, stack):
        out = []
        for layer in stack:
            out.append(layer)
            if layer.name == name:
                out.append(make())
        return out
    return edit


def _k_swap(a, b):
    def edit(by_name, stack):
        return [by_name[b] if layer.name == a else by_name[a] if layer.name == b else layer for layer in stack]
    return edit


def _k_config(name, **changes):
    """Rebuild one layer from its config with some keys changed (new weights; the checks transfer them)."""
    def make(layer):
        config = layer.get_config() | changes
        return type(layer).from_config(config)
    return _k_replace(name, make)


def _keras_adadelta(**changes):
    ref = _keras_ref("mnist_cnn")

    def make():
        import keras

        kw = dict(learning_rate=_keras_schedule(), rho=ref.RHO, epsilon=ref.EPS) | changes
        return keras.optimizers.Adadelta(**kw)
    return make


def _keras_schedule(**changes):
    import keras

    ref = _keras_ref("mnist_cnn")
    kw = dict(initial_learning_rate=ref.LR, decay_steps=ref.STEPS_PER_EPOCH, decay_rate=ref.GAMMA, staircase=True) | changes
    return keras.optimizers.schedules.ExponentialDecay(**kw)


def _keras_adam(**changes):
    ref = _keras_ref("tweet_fasttext")

    def make():
        kw = dict(learning_rate=ref.LR, beta_1=ref.BETA_1, beta_2=ref.BETA_2, epsilon=ref.ADAM_EPSILON, amsgrad=False)
        return ref.DenseAdam(**(kw | changes))  # the reference's Adam, one option changed
    return make


def _keras_ce(**changes):
    def make():
        import keras

        return keras.losses.SparseCategoricalCrossentropy(**(dict(from_logits=True) | changes))
    return make


def _keras_bce(**changes):
    def make():
        import keras

        return keras.losses.BinaryCrossentropy(**(dict(from_logits=True) | changes))
    return make


def _keras_smoothed_ce(eps):
    def make():
        import keras

        def loss(y, logits):
            onehot = keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(y, (-1,)), "int32"), 10)
            return keras.losses.categorical_crossentropy(onehot, logits, from_logits=True, label_smoothing=eps)
        return loss
    return make


def _keras_weighted(network, weight):
    def make():
        import keras

        def loss(y, logits):
            y = keras.ops.reshape(y, (-1,))
            if _classes(network):
                w = keras.ops.where(keras.ops.equal(keras.ops.cast(y, "int32"), 0), weight, 1.0)
                per = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
            else:
                w = keras.ops.where(keras.ops.equal(y, 1.0), weight, 1.0)
                per = keras.losses.binary_crossentropy(keras.ops.reshape(y, (-1, 1)), logits, from_logits=True)
            return keras.ops.mean(per * w)
        return loss
    return make


def _keras_penalty(layer_name, kind, lam, network):
    def edit(by_name, stack):
        import keras

        reg = keras.regularizers.L2(lam) if kind == "l2" else keras.regularizers.L1(lam)
        return _k_config(layer_name, kernel_regularizer=keras.regularizers.serialize(reg))(by_name, stack)
    return edit


def _keras_all_l2(lam):
    """L2(lam) on every kernel and bias: torch's coupled weight decay 2*lam, written as a loss."""
    def edit(by_name, stack):
        import keras

        reg = keras.regularizers.serialize(keras.regularizers.L2(lam))
        out = []
        for layer in stack:
            if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
                layer = type(layer).from_config(layer.get_config() | {"kernel_regularizer": reg, "bias_regularizer": reg})
            elif isinstance(layer, keras.layers.Embedding):
                layer = type(layer).from_config(layer.get_config() | {"embeddings_regularizer": reg})
            out.append(layer)
        return out
    return edit


def _keras_mnist():
    net, ref = "mnist_cnn", _keras_ref("mnist_cnn")

    def add(family, op, site, doc, layers=None, optimizer=None, loss=None, eq=""):
        _add("keras", net, family, op, site, doc, _keras(net, layers, optimizer, loss), eq)

    for name, key, value, default in (("lr", "initial_learning_rate", ref.LR, 0.001), ("rho", "rho", ref.RHO, 0.95),
                                      ("eps", "epsilon", ref.EPS, 1e-7)):
        for label, v in (("-x0.9", value * 0.9), ("-x1.1", value * 1.1), ("=keras-default", default)):
            opt = (lambda v=v, key=key: _keras_adadelta(learning_rate=_keras_schedule(**{key: v}))()) if name == "lr" \
                else _keras_adadelta(**{key: v})
            add("hyperparameter", f"{name}{label}", "optimizer", f"Adadelta {name} {v:g} (reference {value:g})", optimizer=opt)
    for label, change in (("gamma-x0.9", dict(decay_rate=ref.GAMMA * 0.9)), ("gamma-x1.1", dict(decay_rate=ref.GAMMA * 1.1)),
                          ("decay_steps-x0.9", dict(decay_steps=844)), ("decay_steps-x1.1", dict(decay_steps=1032)),
                          ("staircase=False", dict(staircase=False))):
        add("hyperparameter", label, "schedule", f"ExponentialDecay {label} ({change})",
            optimizer=lambda c=change: _keras_adadelta(learning_rate=_keras_schedule(**c))())
    import_layers = _keras_layers
    for conv in ("conv1", "conv2", "fc1"):
        add("structure", "activation-removed", conv, f"{conv} without its ReLU", layers=_k_config(conv, activation=None))
        for act in ("gelu", "tanh", "leaky_relu"):
            add("structure", f"relu-to-{act}", conv, f"{conv}'s ReLU replaced by {act}", layers=_k_config(conv, activation=act))
    for layer in ("conv1", "conv2", "fc1", "fc2"):
        add("structure", "bias-removed", layer, f"{layer} without a bias", layers=_k_config(layer, use_bias=False))
    add("structure", "pool-kind=avg", "pool", "AveragePooling2D(2)",
        layers=_k_replace("pool", lambda m: import_layers().AveragePooling2D(2, name="pool")))
    add("structure", "pool-size=3", "pool", "MaxPooling2D(3, strides 2)", layers=_k_config("pool", pool_size=(3, 3), strides=(2, 2)))
    add("structure", "pool-stride=1", "pool", "MaxPooling2D(2, strides 1)", layers=_k_config("pool", strides=(1, 1)))
    add("structure", "flatten-order=channels_first", "flatten", "Flatten(data_format='channels_first') on NHWC data",
        layers=_k_config("flatten", data_format="channels_first"))
    add("structure", "flatten-order=nchw", "flatten", "transposed to NCHW before flattening, as torch does",
        layers=lambda by_name, stack: _k_insert_after("dropout1", lambda: import_layers().Permute((3, 1, 2)))(by_name, stack))
    for conv in ("conv1", "conv2"):
        add("structure", "kernel=5", conv, f"{conv} kernel 5", layers=_k_config(conv, kernel_size=(5, 5)))
        add("structure", "padding=same", conv, f"{conv} padded 'same'", layers=_k_config(conv, padding="same"))
    for drop, p in (("dropout1", 0.25), ("dropout2", 0.5)):
        for delta in (-0.05, 0.05):
            add("randomness", f"rate{delta:+.2f}", drop, f"{drop} rate {p + delta:g}", layers=_k_config(drop, rate=p + delta))
        add("randomness", "dropout-removed", drop, f"{drop} removed", layers=_k_remove(drop))
    add("randomness", "channel-wise", "dropout1", "SpatialDropout2D(0.25)",
        layers=_k_replace("dropout1", lambda m: import_layers().SpatialDropout2D(0.25, name="dropout1")))
    add("randomness", "moved-before-pool", "dropout1", "dropout1 before the max-pool", layers=_k_swap("pool", "dropout1"))
    add("randomness", "moved-after-fc2", "dropout2", "dropout2 after fc2, on the logits", layers=_k_swap("dropout2", "fc2"))
    add("randomness", "extra-dropout", "conv1", "an extra Dropout(0.1) after conv1",
        layers=_k_insert_after("conv1", lambda: import_layers().Dropout(0.1, name="dropout0")))
    add("randomness", "gaussian-noise", "fc1", "GaussianNoise(0.1) after fc1",
        layers=_k_insert_after("fc1", lambda: import_layers().GaussianNoise(0.1, name="noise")))
    add("randomness", "gaussian-dropout", "fc1", "GaussianDropout(0.1) after fc1",
        layers=_k_insert_after("fc1", lambda: import_layers().GaussianDropout(0.1, name="noise")))
    add("loss/optimizer", "label-smoothing=0.05", "loss", "cross-entropy with label smoothing 0.05", loss=_keras_smoothed_ce(0.05))
    add("loss/optimizer", "reduction=sum", "loss", "cross-entropy summed over the batch", loss=_keras_ce(reduction="sum"))
    add("loss/optimizer", "class-weights", "loss", "class 0 weighted 1.2", loss=_keras_weighted(net, 1.2))
    add("loss/optimizer", "weight-decay-coupled=1e-4", "every layer", "L2 5e-5 on every kernel and bias (coupled decay 1e-4)",
        layers=_keras_all_l2(5e-5))
    add("loss/optimizer", "weight-decay-decoupled=1e-4", "optimizer", "Adadelta(weight_decay=1e-4), Keras's decoupled decay",
        optimizer=_keras_adadelta(weight_decay=1e-4))
    add("loss/optimizer", "l2=1e-4", "fc1", "kernel_regularizer L2(1e-4) on fc1", layers=_keras_penalty("fc1", "l2", 1e-4, net))
    add("loss/optimizer", "l1=1e-5", "fc1", "kernel_regularizer L1(1e-5) on fc1", layers=_keras_penalty("fc1", "l1", 1e-5, net))
    add("loss/optimizer", "clip-norm=0.5", "optimizer", "Adadelta(global_clipnorm=0.5)", optimizer=_keras_adadelta(global_clipnorm=0.5))
    add("loss/optimizer", "from_logits=False", "loss", "logits fed to a loss that expects probabilities",
        loss=_keras_ce(from_logits=False))
    add("equivalent", "dropout-before-relu", "dropout2", "fc1 as Dense + Dropout + ReLU",
        layers=_k_relu_after_dropout, eq="dropout scales by a non-negative mask, and ReLU commutes with that")
    add("equivalent", "schedule-as-piecewise", "schedule", "PiecewiseConstantDecay from step 938 on, every 938 steps",
        optimizer=_keras_piecewise, eq="the same learning rate at every step, written another way")


def _keras_layers():
    from keras import layers

    return layers


def _k_relu_after_dropout(by_name, stack):
    layers = _keras_layers()
    fc1 = by_name["fc1"]
    linear = type(fc1).from_config(fc1.get_config() | {"activation": None})
    out = []
    for layer in stack:
        if layer.name == "fc1":
            out.append(linear)
        elif layer.name == "dropout2":
            out += [layer, layers.ReLU(name="relu3")]
        else:
            out.append(layer)
    return out


def _keras_piecewise():
    import keras

    ref = _keras_ref("mnist_cnn")
    bounds = [ref.STEPS_PER_EPOCH * (e + 1) - 1 for e in range(30)]  # values[i] while step <= bounds[i]
    values = [ref.LR * ref.GAMMA ** e for e in range(31)]
    return keras.optimizers.Adadelta(
        learning_rate=keras.optimizers.schedules.PiecewiseConstantDecay(bounds, values), rho=ref.RHO, epsilon=ref.EPS)


def _keras_tweets():
    net, ref = "tweet_fasttext", _keras_ref("tweet_fasttext")

    def add(family, op, site, doc, layers=None, optimizer=None, loss=None, eq=""):
        _add("keras", net, family, op, site, doc, _keras(net, layers, optimizer, loss), eq)

    for label, f in (("-x0.9", 0.9), ("-x1.1", 1.1)):
        add("hyperparameter", f"lr{label}", "optimizer", f"Adam lr {ref.LR * f:g}", optimizer=_keras_adam(learning_rate=ref.LR * f))
        add("hyperparameter", f"beta1={1 - (1 - ref.BETA_1) * f:g}", "optimizer", f"Adam beta_1 {1 - (1 - ref.BETA_1) * f:g}",
            optimizer=_keras_adam(beta_1=1 - (1 - ref.BETA_1) * f))
        add("hyperparameter", f"beta2={1 - (1 - ref.BETA_2) * f:g}", "optimizer", f"Adam beta_2 {1 - (1 - ref.BETA_2) * f:g}",
            optimizer=_keras_adam(beta_2=1 - (1 - ref.BETA_2) * f))
        add("hyperparameter", f"epsilon{label}", "optimizer", f"Adam epsilon {ref.ADAM_EPSILON * f:g}",
            optimizer=_keras_adam(epsilon=ref.ADAM_EPSILON * f))
    add("hyperparameter", "epsilon=torch-default", "optimizer", "Adam epsilon 1e-8, torch's default",
        optimizer=_keras_adam(epsilon=1e-8))
    layers = _keras_layers
    add("structure", "bias-removed", "fc", "fc without a bias", layers=_k_config("fc", use_bias=False))
    add("structure", "pool-kind=max", "pool", "GlobalMaxPooling1D",
        layers=_k_replace("pool", lambda m: layers().GlobalMaxPooling1D(name="pool")))
    add("structure", "activation-added", "fc", "fc with a ReLU", layers=_k_config("fc", activation="relu"))
    add("randomness", "extra-dropout", "fc", "Dropout(0.1) before the head",
        layers=_k_insert_after("pool", lambda: layers().Dropout(0.1, name="dropout")))
    add("randomness", "embedding-dropout", "embedding", "Dropout(0.1) on the embeddings",
        layers=_k_insert_after("embedding", lambda: layers().Dropout(0.1, name="dropout")))
    add("randomness", "extra-spatial-dropout", "embedding", "SpatialDropout1D(0.1) on the embeddings",
        layers=_k_insert_after("embedding", lambda: layers().SpatialDropout1D(0.1, name="dropout")))
    add("randomness", "gaussian-noise", "embedding", "GaussianNoise(0.1) on the embeddings",
        layers=_k_insert_after("embedding", lambda: layers().GaussianNoise(0.1, name="noise")))
    add("loss/optimizer", "label-smoothing=0.05", "loss", "BCE with label smoothing 0.05", loss=_keras_bce(label_smoothing=0.05))
    add("loss/optimizer", "reduction=sum", "loss", "BCE summed over the batch", loss=_keras_bce(reduction="sum"))
    add("loss/optimizer", "class-weights", "loss", "positives weighted 1.2", loss=_keras_weighted(net, 1.2))
    add("loss/optimizer", "weight-decay-coupled=1e-4", "every layer", "L2 5e-5 on every weight (coupled decay 1e-4)",
        layers=_keras_all_l2(5e-5))
    add("loss/optimizer", "weight-decay-decoupled=1e-4", "optimizer", "Adam(weight_decay=1e-4)", optimizer=_keras_adam(weight_decay=1e-4))
    add("loss/optimizer", "l2=1e-3", "fc", "kernel_regularizer L2(1e-3) on fc", layers=_keras_penalty("fc", "l2", 1e-3, net))
    add("loss/optimizer", "l1=1e-3", "fc", "kernel_regularizer L1(1e-3) on fc", layers=_keras_penalty("fc", "l1", 1e-3, net))
    add("loss/optimizer", "clip-norm=0.1", "optimizer", "Adam(global_clipnorm=0.1)", optimizer=_keras_adam(global_clipnorm=0.1))
    add("loss/optimizer", "amsgrad", "optimizer", "Adam(amsgrad=True)", optimizer=_keras_adam(amsgrad=True))
    add("loss/optimizer", "from_logits=False", "loss", "logits fed to a BCE that expects probabilities",
        loss=_keras_bce(from_logits=False))
    add("data", "mask_zero", "embedding", "Embedding(mask_zero=True): padding left out of the mean",
        layers=_k_config("embedding", mask_zero=True))
    add("data", "wrong-axis", "pool", "GlobalAveragePooling1D(data_format='channels_first'): the mean over the embedding axis",
        layers=lambda by_name, stack: _k_config("pool", data_format="channels_first")(by_name, stack))
    add("equivalent", "mean-as-lambda", "pool", "the mean written as a Lambda(ops.mean(axis=1))",
        layers=_k_replace("pool", lambda m: _keras_mean_layer()), eq="the same mean over the 42 positions")


def _keras_mean_layer():
    import keras

    class Mean(keras.layers.Layer):
        def call(self, x):
            return keras.ops.mean(x, axis=1)
    return Mean(name="pool")


def _relu():
    import torch.nn as nn

    return nn.ReLU()


# ------------------------------------------------------------------------------------------
# Operators by layer kind: every network whose spec has a layer of the kind gets them, at that
# layer (its canonical name is its name in both references' sequential style), no list of networks.
# ------------------------------------------------------------------------------------------
def _layers_of_kind(network, kind) -> list:
    from twinbench.impls import networks

    return [row[0] for row in networks.get(network).param_layers if row[1] == kind]


def _manual_gru(gru, order=(0, 1, 2), reset_after=True, recurrent_bias=True):
    """``gru``'s parameters (an ``nn.GRU``, batch first) in a module that writes torch's GRU
    equations out step by step: the same function with the defaults; with ``order`` the gate
    blocks read in another order (r and z swapped: a port that kept Keras's z, r, h order),
    ``reset_after=False`` the reset gate applied before the recurrent product (Keras's
    reset_after=False formula), ``recurrent_bias=False`` no recurrent bias at all."""
    import torch
    import torch.nn as nn

    class ManualGRU(nn.Module):
        batch_first = True

        def __init__(self):
            super().__init__()
            self.hidden_size = gru.hidden_size
            self.weight_ih_l0, self.weight_hh_l0, self.bias_ih_l0 = gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0
            if recurrent_bias:
                self.bias_hh_l0 = gru.bias_hh_l0

        def _blocks(self, w):
            parts = w.chunk(3, 0)
            return [parts[i] for i in order]

        def forward(self, x):
            (w_ir, w_iz, w_in), (w_hr, w_hz, w_hn) = self._blocks(self.weight_ih_l0), self._blocks(self.weight_hh_l0)
            b_ir, b_iz, b_in = self._blocks(self.bias_ih_l0)
            zero = torch.zeros_like(b_ir)
            b_hr, b_hz, b_hn = self._blocks(self.bias_hh_l0) if recurrent_bias else (zero, zero, zero)
            h = x.new_zeros(x.shape[0], self.hidden_size)
            states = []
            for t in range(x.shape[1]):
                xt = x[:, t]
                r = torch.sigmoid(xt @ w_ir.T + b_ir + h @ w_hr.T + b_hr)
                z = torch.sigmoid(xt @ w_iz.T + b_iz + h @ w_hz.T + b_hz)
                if reset_after:
                    n = torch.tanh(xt @ w_in.T + b_in + r * (h @ w_hn.T + b_hn))
                else:
                    n = torch.tanh(xt @ w_in.T + b_in + (r * h) @ w_hn.T + b_hn)
                h = (1 - z) * n + z * h
                states.append(h)
            return torch.stack(states, 1), h.unsqueeze(0)
    return ManualGRU()


def _sequence_module(what):
    """A parameter-free module on a GRU's (sequence, state) output or on token ids."""
    import torch
    import torch.nn as nn

    class Sequence(nn.Module):
        def forward(self, x):
            if what == "mean":          # the mean of the states in place of the last one
                return x[0].mean(1)
            if what == "state":         # the final state, h_n: the last step's output, read another way
                return x[1][-1]
            if what == "flip":          # the sequence read backwards
                return x.flip(1)
            if what == "pad-first":     # each row's padding (id 0) moved before its tokens
                order = torch.argsort((x != 0).to(torch.int64), dim=1, stable=True)
                return torch.gather(x, 1, order)
            raise ValueError(what)
    return Sequence()


def _torch_recurrent():
    """GRU operators on the torch reference of every network that has a GRU layer."""
    from twinbench.fixtures import expected as E

    for net in E.NETWORKS:
        for gru in _layers_of_kind(net, "gru"):
            add = lambda family, op, doc, layers, eq="", site=gru, net=net: _add(  # noqa: E731
                "torch", net, family, op, site, doc, _torch(net, layers), eq)
            add("structure", "gate-order=z,r,n", f"{gru}'s r and z gate blocks read in Keras's order",
                _replace(gru, lambda m: _manual_gru(m, order=(1, 0, 2))))
            add("structure", "reset-before", f"{gru}'s reset gate applied before the recurrent product "
                "(Keras's reset_after=False formula)", _replace(gru, lambda m: _manual_gru(m, reset_after=False)))
            add("structure", "recurrent-bias-removed", f"{gru} without its recurrent bias (bias_hh)",
                _replace(gru, lambda m: _manual_gru(m, recurrent_bias=False)))
            add("structure", "go-backwards", f"{gru} reads the sequence backwards",
                lambda items, g=gru: [x for n, m in items for x in (
                    ([("flip", _sequence_module("flip"))] if n == g else []) + [(n, m)])])
            add("structure", "mean-of-states", f"the head reads the mean of {gru}'s states, not its last",
                lambda items: [(n, _sequence_module("mean") if n == "last" else m) for n, m in items])
            add("data", "padding-first", "the tweets' padding moved before their tokens, which the GRU then reads last",
                lambda items: [("pad_first", _sequence_module("pad-first"))] + items, site="embedding")
            add("equivalent", "written-out", f"{gru} as its equations written out, step by step",
                _replace(gru, lambda m: _manual_gru(m)), eq="the same GRU function on the same parameters")
            add("equivalent", "final-state", f"the head reads {gru}'s final state h_n",
                lambda items: [(n, _sequence_module("state") if n == "last" else m) for n, m in items],
                eq="a one-layer, one-direction GRU's final state is its last step's output", site="last")


def _keras_recurrent():
    """GRU operators on the Keras reference of every network that has a GRU layer."""
    from twinbench.fixtures import expected as E

    for net in E.NETWORKS:
        for gru in _layers_of_kind(net, "gru"):
            add = lambda family, op, doc, layers, eq="", site=gru, net=net: _add(  # noqa: E731
                "keras", net, family, op, site, doc, _keras(net, layers), eq)
            add("structure", "reset_after=False", "GRU(reset_after=False): the reset gate before the recurrent product",
                _k_config(gru, reset_after=False))
            add("structure", "go_backwards", "GRU(go_backwards=True)", _k_config(gru, go_backwards=True))
            add("structure", "recurrent_activation=hard_sigmoid", "GRU(recurrent_activation='hard_sigmoid')",
                _k_config(gru, recurrent_activation="hard_sigmoid"))
            add("structure", "mean-of-states", "GRU(return_sequences=True) and the mean of its states",
                lambda by_name, stack, g=gru: [x for layer in _k_config(g, return_sequences=True)(by_name, stack)
                                               for x in ([layer] + ([_keras_layers().GlobalAveragePooling1D(name="mean")]
                                                                    if layer.name == g else []))])
            add("randomness", "recurrent_dropout=0.1", "GRU(recurrent_dropout=0.1)", _k_config(gru, recurrent_dropout=0.1))
            add("randomness", "dropout=0.1", "GRU(dropout=0.1): its inputs dropped", _k_config(gru, dropout=0.1))
            add("data", "mask_zero-steps", "Embedding(mask_zero=True): the GRU skips the padded positions",
                _k_config("embedding", mask_zero=True), site="embedding")
            add("equivalent", "unroll", "GRU(unroll=True)", _k_config(gru, unroll=True), eq="the same recurrence, unrolled")
            add("equivalent", "sequence-last", "GRU(return_sequences=True) and a layer taking its last step",
                lambda by_name, stack, g=gru: [x for layer in _k_config(g, return_sequences=True)(by_name, stack)
                                               for x in ([layer] + ([_keras_last_step()] if layer.name == g else []))],
                eq="the last step of the sequence is what return_sequences=False returns")


def _keras_last_step():
    import keras

    class LastStep(keras.layers.Layer):
        def call(self, x):
            return x[:, -1]
    return LastStep(name="last")


# ------------------------------------------------------------------------------------------
# BatchNorm operators: every BatchNorm layer of every network, each operator at one of them in
# turn (the mutants) or at every one (diagnosis's hypotheses, impls/hypotheses.py)
# ------------------------------------------------------------------------------------------
class _BatchNormAs:
    """Builders of torch modules holding a BatchNorm's tensors under its own names (so every
    adapter maps them as a BatchNorm's) and computing it with ``F.batch_norm``."""

    @staticmethod
    def make(bn, mode):
        """``bn``'s tensors in a module that normalises with ``F.batch_norm``: in training mode
        only when training (``mode="functional"``, the same BatchNorm written as a function), or
        always (``mode="always-training"``: batch statistics in evaluation too, the running ones
        still updated)."""
        import torch.nn as nn
        import torch.nn.functional as F

        class BatchNormAsFunction(nn.Module):
            def __init__(self):
                super().__init__()
                self.weight, self.bias = bn.weight, bn.bias
                self.register_buffer("running_mean", bn.running_mean.clone())
                self.register_buffer("running_var", bn.running_var.clone())
                self.momentum, self.eps = bn.momentum, bn.eps

            def forward(self, x):
                training = self.training or mode == "always-training"
                return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                    training=training, momentum=self.momentum, eps=self.eps)
        return BatchNormAsFunction()

    @staticmethod
    def without(bn, tensor):
        """``bn`` without its ``tensor`` ("weight", gamma, or "bias", beta): Keras's scale=False or
        center=False, which keep the other one."""
        clone = _torch_bn_like(bn)
        clone.load_state_dict(bn.state_dict())
        clone.register_parameter(tensor, None)
        return clone

    @staticmethod
    def frozen(bn):
        """``bn`` as Keras's ``trainable=False`` runs it: its running statistics in training too,
        never updated, gamma and beta not trained."""
        import torch.nn as nn
        import torch.nn.functional as F

        class FrozenBatchNorm(nn.Module):
            def __init__(self):
                super().__init__()
                self.weight, self.bias = bn.weight, bn.bias
                self.weight.requires_grad_(False)
                self.bias.requires_grad_(False)
                self.register_buffer("running_mean", bn.running_mean.clone())
                self.register_buffer("running_var", bn.running_var.clone())
                self.eps = bn.eps

            def forward(self, x):
                return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                    training=False, eps=self.eps)
        return FrozenBatchNorm()


def _torch_bn_like(bn, **changes):
    """A torch BatchNorm of ``bn``'s class and size with some options changed."""
    options = dict(eps=bn.eps, momentum=bn.momentum, affine=bn.affine, track_running_stats=bn.track_running_stats)
    return type(bn)(bn.num_features, **(options | changes))


def _after_activation(items_kinds: list, bn: str):
    """The name of the activation right after ``bn`` in a sequential list of (name, kind), or None."""
    names = [n for n, _ in items_kinds]
    i = names.index(bn)
    return names[i + 1] if i + 1 < len(names) and items_kinds[i + 1][1] == "activation" else None


def batchnorm_faults(bn, keras_twins: bool = False) -> list:
    """(operator, doc, change) for the faults a port's torch BatchNorm ``bn`` commonly has, each
    ``change(module)`` a replacement for it: Keras's values written into torch where the two
    frameworks' options mean different things (momentum is the weight of the new batch in torch, of
    the old statistic in Keras), Keras's defaults left in place of the reference's, no gamma and
    beta, running statistics untracked, batch statistics in evaluation. With ``keras_twins``, also
    the torch twins of Keras's BatchNorm faults: its default momentum 0.99 converted (0.01), no beta
    (center=False), no gamma (scale=False), frozen (trainable=False). A momentum equal to ``bn``'s
    own or to an earlier one is left out (the ids stay distinct). The mutants, the hypotheses at
    every BatchNorm and a pair's hypotheses all take their BatchNorm faults from here."""
    momenta = [(1 - bn.momentum, "Keras's value for the same average written into torch"),
               (0.99, "Keras's default written into torch")]
    momenta += [(0.01, "Keras's default momentum 0.99, converted")] if keras_twins else []
    out, seen = [], {bn.momentum}
    for v, why in momenta:
        if not any(abs(v - u) < 1e-12 for u in seen):
            seen.add(v)
            out.append((f"bn-momentum={v:g}", f"momentum {v:g}: {why}", lambda m, v=v: _torch_bn_like(m, momentum=v)))
    out += [("bn-eps=0.001", "eps 1e-3, Keras's default", lambda m: _torch_bn_like(m, eps=1e-3))] if bn.eps != 1e-3 else []
    out += [
        ("bn-affine=False", "without gamma and beta (affine=False)", lambda m: _torch_bn_like(m, affine=False)),
        ("bn-stats-untracked", "without running statistics (track_running_stats=False): batch statistics in "
         "evaluation too", lambda m: _torch_bn_like(m, track_running_stats=False)),
        ("bn-always-training", "normalising with the batch's statistics in evaluation too (its functional form "
         "called with training=True)", lambda m: _BatchNormAs.make(m, "always-training")),
    ]
    if keras_twins:
        out += [
            ("bn-center=False", "without beta (Keras's center=False)", lambda m: _BatchNormAs.without(m, "bias")),
            ("bn-scale=False", "without gamma (Keras's scale=False)", lambda m: _BatchNormAs.without(m, "weight")),
            ("bn-frozen", "frozen: its running statistics in training too, never updated, gamma and beta not "
             "trained (Keras's trainable=False)", _BatchNormAs.frozen),
        ]
    return out


def _reference_batchnorm(network: str, bn: str):
    """(the torch reference's sequential (name, module) list, the name of the activation right
    after ``bn`` or None, the BatchNorm module ``bn``)."""
    from twinbench.impls.adapter import layer_kind

    items = list(_torch_ref(network).build_sequential().named_children())
    return items, _after_activation([(n, layer_kind(type(m).__name__)) for n, m in items], bn), dict(items)[bn]


def torch_batchnorm_operators(network: str, bn: str, keras_twins: bool = False) -> list:
    """(family, operator, doc, layers edit, equivalent) for the BatchNorm layer ``bn`` of
    ``network``'s torch reference: its faults (``batchnorm_faults``), the BatchNorm moved after its
    activation, and one BatchNorm written another way."""
    _, act, module = _reference_batchnorm(network, bn)
    out = [("hyperparameter" if op.startswith(("bn-momentum", "bn-eps")) else "structure", op, f"{bn}: {doc}",
            _replace(bn, change), "") for op, doc, change in batchnorm_faults(module, keras_twins)]
    if act is not None:
        out.append(("structure", "bn-after-relu", f"{bn} after its activation {act}, not before", _swap(bn, act), ""))
    out.append(("equivalent", "bn-functional", f"{bn} written as F.batch_norm on its own parameters and buffers",
                _replace(bn, lambda m: _BatchNormAs.make(m, "functional")),
                "the same BatchNorm in training and evaluation, written as a function"))
    return out


def keras_batchnorm_operators(network: str, bn: str) -> list:
    """(family, operator, doc, layers edit, equivalent) for the BatchNorm layer ``bn`` of
    ``network``'s Keras reference: torch's values copied where the options mean different things,
    Keras's defaults left in place of the reference's, beta or gamma dropped, the layer frozen,
    moved after its activation, and its axis written another way (equivalent). The layers are read
    from the torch reference (the same names in both sequential styles): listing imports no Keras."""
    _, act, module = _reference_batchnorm(network, bn)
    torch_momentum = module.momentum

    def positive_axis(by_name, stack):
        import keras

        x = keras.Input(_keras_input_shape(network))
        for layer in stack:
            if layer.name == bn:
                return _k_config(bn, axis=len(x.shape) - 1)(by_name, stack)
            x = type(layer).from_config(layer.get_config())(x)
        raise ValueError(f"{network}: no layer {bn}")

    out = [
        ("hyperparameter", f"bn-momentum={torch_momentum:g}", f"BatchNormalization(momentum={torch_momentum:g}): "
         "torch's value copied", _k_config(bn, momentum=torch_momentum), ""),
        ("hyperparameter", "bn-momentum=0.99", "BatchNormalization(momentum=0.99), Keras's default",
         _k_config(bn, momentum=0.99), ""),
        ("hyperparameter", "bn-epsilon=0.001", "BatchNormalization(epsilon=1e-3), Keras's default",
         _k_config(bn, epsilon=1e-3), ""),
        ("structure", "bn-center=False", "BatchNormalization(center=False): no beta", _k_config(bn, center=False), ""),
        ("structure", "bn-scale=False", "BatchNormalization(scale=False): no gamma", _k_config(bn, scale=False), ""),
        ("structure", "bn-frozen", "BatchNormalization(trainable=False): frozen, its moving statistics used in "
         "training too", _k_config(bn, trainable=False), ""),
    ]
    if act is not None:
        out.append(("structure", "bn-after-relu", f"{bn} after its activation {act}, not before", _k_swap(bn, act), ""))
    out.append(("equivalent", "bn-axis=positive", "BatchNormalization's channel axis counted from the front (3 for "
                "a 4-D input) instead of -1", positive_axis, "the same axis as -1"))
    return out


def _keras_input_shape(network) -> tuple:
    from twinbench.impls import networks

    return tuple(networks.get(network).input.shape)


def _batchnorm_mutants(framework: str):
    """Each BatchNorm operator at one BatchNorm layer of each network that has one, in turn."""
    from twinbench.fixtures import expected as E

    for net in E.NETWORKS:
        sites = _layers_of_kind(net, "batchnorm")
        if not sites:
            continue
        operators = torch_batchnorm_operators if framework == "torch" else keras_batchnorm_operators
        build = _torch if framework == "torch" else _keras
        by_site = {bn: operators(net, bn) for bn in sites}
        for i, (family, op, doc, edit, eq) in enumerate(by_site[sites[0]]):
            bn = sites[i % len(sites)]
            match = next((row for row in by_site[bn] if row[1] == op), None)
            if match is None:  # the operator does not apply there (no activation after it): the first site
                bn, match = sites[0], by_site[sites[0]][i]
            _add(framework, net, family, op, bn, match[2], build(net, match[3]), match[4])


def _generate():
    if not _MUTANTS:
        from twinbench.impls import frameworks

        keras = frameworks.keras is not None  # a torch-only machine: the Keras mutants cannot be built there
        for generate in (_torch_mnist, _keras_mnist if keras else None, _torch_tweets, _keras_tweets if keras else None,
                         _torch_recurrent, _keras_recurrent if keras else None,
                         lambda: _batchnorm_mutants("torch"), (lambda: _batchnorm_mutants("keras")) if keras else None):
            if generate is not None:
                generate()
    return list(_MUTANTS)


def all_mutants(framework: str | None = None) -> list:
    """Every mutant, torch first; only one framework's with ``framework``. Listing imports torch,
    never TensorFlow: a Keras mutant imports Keras when it is built."""
    return [m for m in _generate() if framework in (None, m.framework)]


_HYPOTHESIS_FACTORIES: dict = {}  # {(network, its builders): {key: factory}}


def __getattr__(name):
    """``impls.mutants:<key>`` is a mutant's factory (the --impl contract). Diagnosis's hypotheses
    are reached here too: only the network the key names is asked for them (a pair's builds its
    torch twin), once per network and builders."""
    if not name.startswith("m_"):  # e.g. __path__, which an import looks up: only mutant keys are factories
        raise AttributeError(f"module 'twinbench.impls.mutants' has no attribute {name!r}")
    from twinbench.impls import networks
    from twinbench.impls.hypotheses import hypotheses

    for mutant in _generate():
        if mutant.key == name:
            return mutant.build
    prefixes = {network: Mutant(f"torch-{network}.", network, "torch", "", "", None).key for network in networks.names()}
    for network in sorted(prefixes, key=lambda n: -len(prefixes[n])):  # "a_b" before "a", whose prefix is shorter
        if not name.startswith(prefixes[network]):
            continue
        known = _HYPOTHESIS_FACTORIES.setdefault((network, repr(networks.get(network).builders)), {})
        if not known:
            known.update({h.key: h.build for h in hypotheses(network)})
        if name in known:
            return known[name]
    raise AttributeError(f"twinbench.impls.mutants has no mutant factory {name!r}")
