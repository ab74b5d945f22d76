"""Diagnosis's hypotheses (suites/diagnosis.py): known faults applied to the torch reference.

Each hypothesis is a ``Mutant`` of the torch reference (impls/mutants.py): the torch mutants of the
network (torch is always installed, and a mutant of either framework has its torch twin there),
minus the equivalent ones, plus faults that combine operators or that only the other framework
writes naturally (Keras's optimizer defaults, its flatten orders, its loss forms), and a grid of
optimizer hyperparameters. Their factories are reached as ``impls.mutants:<key>``, as the
mutants' are.
"""

from __future__ import annotations

from twinbench.impls.mutants import (Mutant, _classes, _insert_after, _layers_of_kind, _manual_gru, _relu, _replace,
                                     _torch, _torch_optimizer, _torch_ref, all_mutants, batchnorm_faults,
                                     torch_batchnorm_operators)


def _keras_order_flatten(perm):
    """What a Keras model flattening its channel-last (N, H, W, C) activations after the axis
    permutation ``perm`` computes, written for torch's (N, C, H, W) activations and its fc1, whose
    rows are in channel-major order: the Keras flatten, then its (H, W, C) order carried into
    torch's (C, H, W) one, as a port carries the kernel."""
    import torch.nn as nn

    class FlattenKerasOrder(nn.Module):
        def forward(self, x):
            z = x.permute(0, 2, 3, 1)
            v = z.permute(*perm).reshape(len(x), -1)
            return v.reshape(z.shape).permute(0, 3, 1, 2).flatten(1)
    return FlattenKerasOrder()


def _torch_batch_mean_weighted_ce(weights):
    def edit(r, model):
        import torch
        import torch.nn.functional as F

        w = torch.tensor(weights, dtype=torch.float32)
        r["loss"] = lambda out, y: (F.cross_entropy(out, y, reduction="none") * w.to(out.device)[y]).mean()
    return edit


def _torch_sparse_probability_loss():
    """keras.losses.sparse_categorical_crossentropy(from_logits=False) on the TensorFlow backend:
    the outputs clipped to [1e-7, 1 - 1e-7], their logs fed to a softmax cross-entropy (so
    renormalised). Keras's torch and jax backends divide by the sum first, as the categorical
    form does (the from_logits=False hypothesis)."""
    def edit(r, model):
        import torch.nn.functional as F

        r["loss"] = lambda out, y: F.cross_entropy(out.clamp(1e-7, 1 - 1e-7).log(), y)
    return edit


def _torch_probability_loss(network):
    """Logits fed to a loss that expects probabilities, as Keras computes it with from_logits=False:
    outputs renormalised (categorical), clipped to [1e-7, 1 - 1e-7], then the log-likelihood."""
    def edit(r, model):
        import torch

        def categorical(out, y):
            p = (out / out.sum(1, keepdim=True)).clamp(1e-7, 1 - 1e-7)
            return torch.nn.functional.nll_loss(p.log(), y)

        def binary(out, y):
            p, t = out.clamp(1e-7, 1 - 1e-7), y.reshape(out.shape)
            return -(t * p.log() + (1 - t) * (1 - p).log()).mean()
        r["loss"] = categorical if _classes(network) else binary
    return edit


def _rescued_probability_loss(network):
    def edit(r, model):
        import torch
        import torch.nn.functional as F

        def logits_of(out):  # in training, what Keras recovers from the activation; else the outputs as given
            if not out.requires_grad:
                return out
            return out.log() if _classes(network) else torch.logit(out)

        if _classes(network):
            r["loss"] = lambda out, y: F.cross_entropy(logits_of(out), y)
        else:
            r["loss"] = lambda out, y: F.binary_cross_entropy_with_logits(logits_of(out), y.reshape(out.shape))
        r["output"] = "probs"
    return edit


def _probability_layer(network):
    def make():
        import torch.nn as nn

        return nn.Softmax(dim=1) if _classes(network) else nn.Sigmoid()
    return make


def _torch_l2_everywhere(lam):
    def edit(r, model):
        base = r["loss"]
        r["loss"] = lambda out, y: base(out, y) + lam * sum(p.pow(2).sum() for p in model.parameters())
    return edit


def _kernel_transposed(conv):
    """``conv`` applying its kernel with height and width exchanged (a kernel ported in the wrong
    layout; its shape, 3 x 3, gives nothing away)."""
    import torch.nn as nn
    import torch.nn.functional as F

    class KernelTransposedConv2d(nn.Conv2d):
        def forward(self, x):
            return F.conv2d(x, self.weight.transpose(2, 3), self.bias, self.stride, self.padding)

    return KernelTransposedConv2d(conv.in_channels, conv.out_channels, conv.kernel_size)


def hypotheses(network: str) -> list:
    """What diagnosis (suites/diagnosis.py) matches a rejected candidate against: the torch mutants
    of the network (torch is always installed, and a mutant of either framework has its torch twin
    here), minus the equivalent ones, plus faults that combine operators or that only the other
    framework writes naturally. A network outside the references (a user's pair) gets the
    hypotheses that need no knowledge of its code (``pair_hypotheses``)."""
    from twinbench.fixtures import expected as E

    if network not in E.NETWORKS:
        return pair_hypotheses(network)
    out = [m for m in all_mutants("torch") if m.network == network and not m.equivalent]
    from twinbench.impls import networks

    head = networks.get(network).param_layers[-1][0]  # the output layer, by the spec (fc2, fc)
    extra = []
    if network == "mnist_cnn":
        extra.append(("optimizer=keras-defaults", "optimizer", "Adadelta with Keras's defaults (lr 0.001, rho 0.95, eps 1e-7)",
                      _torch(network, recipe=_torch_optimizer(network, lr=0.001, rho=0.95, eps=1e-7))))
        # The same defaults with the recipe's learning rate: a port with a second fault in its
        # learning rate or schedule (no decay, a per-batch decay) differs from the hypothesis above
        # on the schedule probe, but its optimizer's dynamics are still Keras's defaults.
        extra.append(("rho,eps=keras-defaults", "optimizer", "Adadelta with Keras's default rho 0.95 and eps 1e-7",
                      _torch(network, recipe=_torch_optimizer(network, rho=0.95, eps=1e-7))))
        extra += [("kernel-transposed", conv, f"{conv}'s kernel applied transposed (height <-> width)",
                   _torch(network, layers=_replace(conv, _kernel_transposed))) for conv in ("conv1", "conv2")]
        # A Keras port's flatten in another order, its fc1 kernel kept in Keras's (channel-last) row
        # order: not the torch port's fault (flatten-order=nhwc), whose permutation is the inverse.
        extra += [(f"flatten-order=keras-{name}", "flatten", doc, _torch(network, layers=_replace(
                      "flatten", lambda m, p=perm: _keras_order_flatten(p))))
                  for name, perm, doc in (
                      ("nchw", (0, 3, 1, 2), "a Keras port transposing to NCHW before its Flatten"),
                      ("channels_first", (0, 2, 3, 1), "a Keras port's Flatten(data_format='channels_first') on "
                                                       "channel-last data"))]
        # Keras weighs classes per example and averages over the batch (class_weight, sample_weight);
        # torch's CrossEntropyLoss(weight=...) divides by the batch's summed weights instead.
        extra.append(("class-weights=batch-mean", "loss", "class 0 weighted 1.2, averaged over the batch as Keras does",
                      _torch(network, recipe=_torch_batch_mean_weighted_ce([1.2] + [1.0] * 9))))
        # Keras's sparse cross-entropy on probabilities (TensorFlow backend) clips and renormalises
        # them through a softmax of their logs; its categorical one divides by their sum first (the
        # hypothesis below).
        extra.append(("from_logits=False-sparse", "loss", "logits fed to SparseCategoricalCrossentropy("
                      "from_logits=False), which reads them as probabilities",
                      _torch(network, recipe=_torch_sparse_probability_loss())))
        # Keras's "leaky_relu" slopes 0.2 where torch's LeakyReLU slopes 0.01 (the torch mutants' default)
        extra += [("relu-to-leaky_relu-0.2", relu, f"{relu} replaced by LeakyReLU(0.2), Keras's default slope",
                   _torch(network, layers=_replace(relu, lambda m: __import__("torch").nn.LeakyReLU(0.2))))
                  for relu in ("relu1", "relu2", "relu3")]
    else:
        ref = _torch_ref(network)
        extra += [
            ("epsilon=torch-default", "optimizer", "Adam's epsilon-hat at torch's default value, 1e-8",
             _torch(network, recipe=_torch_optimizer(network, epsilon_hat=1e-8))),
            ("eps=1e-7-torch-placement", "optimizer", "plain torch Adam with eps 1e-7 (added to sqrt(v-hat))",
             _torch(network, recipe=lambda r, m: r.update(optimizer=lambda p: __import__("torch").optim.Adam(
                 p, lr=ref.LR, eps=1e-7)))),
            ("activation-added", head, "a ReLU on the logit",
             _torch(network, layers=_insert_after(head, "relu", _relu))),
        ]
    # One optimizer hyperparameter at another value, on a grid of decades (eps) and of common
    # decay rates; the values that are a framework's default are the optimizer-defaults hypotheses.
    grid = ({"eps": (1e-9, 1e-8, 1e-5, 1e-4, 1e-3), "rho": (0.5, 0.8, 0.99, 0.999)} if network == "mnist_cnn" else
            {"epsilon_hat": (1e-10, 1e-9, 1e-6, 1e-5, 1e-4), "beta1": (0.5, 0.8, 0.95, 0.99),
             "beta2": (0.9, 0.99, 0.9999)})
    for name, values in grid.items():
        for value in values:
            changes = {name: value}
            if name.startswith("beta"):
                ref = _torch_ref(network)
                changes = {"betas": (value, ref.BETAS[1]) if name == "beta1" else (ref.BETAS[0], value)}
            extra.append((f"grid-{name}={value:g}", "optimizer", f"the recipe's optimizer with {name} {value:g}",
                          _torch(network, recipe=_torch_optimizer(network, **changes))))
    extra += [
        ("probabilities-as-logits", "loss", "probabilities declared as such (output='probs') but fed to a loss on logits",
         _torch(network, layers=_insert_after(head, "probs", _probability_layer(network)),
                recipe=lambda r, m: r.update(output="probs"))),
        # Keras on the TensorFlow backend, given a softmax/sigmoid output and a loss with
        # from_logits=True, warns and trains on the activation's own logits; the loss of the
        # model's saved outputs is still the loss of probabilities taken as logits.
        ("probabilities-as-logits-rescued", "loss", "probabilities taken as logits by the loss of the model's outputs, "
         "while training uses their logits (Keras's rescue on the TensorFlow backend)",
         _torch(network, layers=_insert_after(head, "probs", _probability_layer(network)),
                recipe=_rescued_probability_loss(network))),
        ("from_logits=False", "loss", "logits fed to a loss that expects probabilities (from_logits=False)",
         _torch(network, recipe=_torch_probability_loss(network))),
        ("weight-decay-coupled=1e-4", "every layer", "5e-5 * ||w||^2 of every weight added to the loss",
         _torch(network, recipe=_torch_l2_everywhere(5e-5))),
    ]
    extra += _batchnorm_hypotheses(network)
    known = {m.id for m in out}
    for operator, site, doc, build in extra:
        if f"torch-{network}.{operator}@{site}" not in known:
            out.append(Mutant(f"torch-{network}.{operator}@{site}", network, "torch", "hypothesis", doc, build))
    return out


def _batchnorm_hypotheses(network: str) -> list:
    """At every BatchNorm layer (the mutants take one in turn): each torch BatchNorm operator, with
    the torch twins of Keras's BatchNorm faults (``mutants.batchnorm_faults``)."""
    return [(op, bn, doc, _torch(network, layers=edit)) for bn in _layers_of_kind(network, "batchnorm")
            for _, op, doc, edit, eq in torch_batchnorm_operators(network, bn, keras_twins=True) if not eq]


# ------------------------------------------------------------------------------------------
# A user's pair: operators on the modules of its torch twin, found by type, not by name
# ------------------------------------------------------------------------------------------
_ACTIVATIONS = ("ReLU", "GELU", "SiLU", "Tanh", "Sigmoid", "LeakyReLU", "ELU", "Softplus", "Mish", "Hardswish")


def _torch_twin(network: str) -> tuple:
    """(what the network's torch reference's factory returns, its model): a pair's torch twin."""
    from twinbench.impls import registry

    obj = registry.load_factory(registry.reference("torch", network).factory)()
    return obj, obj["model"] if isinstance(obj, dict) else obj


def _on_module(network: str, site: str, change):
    """A factory: the pair's torch twin with ``change(module)``'s result in place of its submodule
    ``site`` (the builder's recipe dict, or bare model, kept)."""
    def factory():
        obj, model = _torch_twin(network)
        parent_name, _, child = site.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, change(getattr(parent, child)))
        return obj
    return factory


def pair_hypotheses(network: str) -> list:
    """Faults a port of any network commonly has, applied to the pair's torch twin where it has the
    module they concern: an activation missing or computed in the other framework's default form
    (GELU's tanh approximation, Keras's LeakyReLU slopes), a dropout missing or at another rate, a
    BatchNorm's momentum, epsilon, gamma and beta, and statistics, a recurrent layer's direction and
    a GRU's gate order, reset formula and recurrent bias.
    Each is named by the module's path in the torch model."""
    import torch.nn as nn

    _, model = _torch_twin(network)
    found = []
    for site, module in model.named_modules():
        kind = type(module).__name__
        if not site or type(module).__module__.split(".")[0] != "torch":
            continue
        if kind in _ACTIVATIONS:
            found.append(("activation-removed", site, f"{site} ({kind}) removed", lambda m: nn.Identity()))
        if kind == "GELU":
            other = "none" if module.approximate == "tanh" else "tanh"
            found.append((f"gelu-approximate={other}", site, f"{site}: GELU(approximate={other!r})",
                          lambda m, a=other: nn.GELU(approximate=a)))
        if kind == "LeakyReLU":
            found += [(f"leaky-slope={s:g}", site, f"{site}: LeakyReLU({s:g}), {why}",
                       lambda m, s=s: nn.LeakyReLU(s))
                      for s, why in ((0.2, "keras.activations.leaky_relu's default"),
                                     (0.3, "keras.layers.LeakyReLU's default"), (0.01, "torch's default"))
                      if s != module.negative_slope]
        if (isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, nn.modules.lazy.LazyModuleMixin)
                and module.affine and module.track_running_stats and module.momentum is not None):
            found += _pair_batchnorm(site, module)
        if isinstance(module, (nn.GRU, nn.LSTM)) and module.num_layers == 1 and not module.bidirectional:
            found += _pair_recurrent(site, module)
        if isinstance(module, nn.modules.dropout._DropoutNd):
            found.append(("dropout-removed", site, f"{site} (rate {module.p:g}) removed", lambda m: nn.Identity()))
            found += [(f"rate={1 - module.p:g}", site, f"{site} at rate {1 - module.p:g} (the keep probability "
                       "taken for the rate)", lambda m, p=1 - module.p: type(m)(p))] if module.p != 0.5 else []
    return [Mutant(f"torch-{network}.{operator}@{site}", network, "torch", "hypothesis", doc,
                   _on_module(network, site, change)) for operator, site, doc, change in found]


def _reading_backwards(rnn):
    """``rnn`` reading its input sequence backwards (Keras's go_backwards=True)."""
    import torch.nn as nn

    class Backwards(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = rnn

        def forward(self, x, *args):
            return self.inner(x.flip(1 if rnn.batch_first else 0), *args)
    return Backwards()


def _pair_recurrent(site: str, rnn) -> list:
    """A pair's one-layer, one-direction GRU or LSTM (torch, at ``site``) read backwards; a GRU's
    also with its gate blocks in Keras's order, Keras's reset_after=False formula, or no
    recurrent bias (written out step by step: batch-first GRUs with biases)."""
    import torch.nn as nn

    rows = [("go-backwards", "reading its sequence backwards (Keras's go_backwards=True)", _reading_backwards)]
    if isinstance(rnn, nn.GRU) and rnn.batch_first and rnn.bias:
        rows += [
            ("gate-order=z,r,n", "with its r and z gate blocks read in Keras's order",
             lambda m: _manual_gru(m, order=(1, 0, 2))),
            ("reset-before", "with its reset gate before the recurrent product (Keras's reset_after=False)",
             lambda m: _manual_gru(m, reset_after=False)),
            ("recurrent-bias-removed", "without its recurrent bias (bias_hh)", lambda m: _manual_gru(m, recurrent_bias=False)),
        ]
    return [(op, site, f"{site} ({type(rnn).__name__}) {doc}", change) for op, doc, change in rows]


def _pair_batchnorm(site: str, bn) -> list:
    """A pair's BatchNorm ``bn`` (torch, at ``site``) with the faults a port's BatchNorm commonly
    has, and the torch twins of Keras's (``mutants.batchnorm_faults``)."""
    return [(op, site, f"{site} ({type(bn).__name__}): {doc}", change)
            for op, doc, change in batchnorm_faults(bn, keras_twins=True)]
