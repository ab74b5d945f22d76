"""A correct torch port with two param groups labelled by a "name" key and a hand-written scheduler that keeps its own bookkeeping in them.

The groups (the convolutions, the dense layers) have the recipe's settings; "name" is a label no
torch optimizer reads. The scheduler decays the learning rate x0.7 per epoch in closed form and
keeps a generator of its factors and the initial rate in each group: values that are not
settings (a generator cannot even be copied). Written from a stranger's port (2026-12-07) that
the per-epoch options check first rejected.
"""

import itertools

import torch

from twinbench.impls import torch_mnist_cnn as ref

NETWORK = "mnist_cnn"


class GeneratorDecay:
    def __init__(self, optimizer, gamma=ref.GAMMA):
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group["factors"] = (gamma ** (epoch + 1) for epoch in itertools.count())
            group["initial_lr"] = group["lr"]

    def step(self):
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * next(group["factors"])


def factory():
    model = ref.Net()

    def optimizer(params):
        named = dict(model.named_parameters())
        return torch.optim.Adadelta(
            [{"params": [p for n, p in named.items() if n.startswith("conv")], "name": "conv"},
             {"params": [p for n, p in named.items() if n.startswith("fc")], "name": "fc"}],
            lr=ref.LR, rho=ref.RHO, eps=ref.EPS, weight_decay=ref.WEIGHT_DECAY)

    return dict(ref.recipe(model), optimizer=optimizer, scheduler=GeneratorDecay)
