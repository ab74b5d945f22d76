"""The reference torch CNN trained with a second param group: fc2 (the head) at half the learning rate."""

import torch

from twinbench.impls import torch_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_optimizer_options",)


def optimizer(params):
    params = list(params)
    head = params[-2:]  # fc2.weight, fc2.bias
    return torch.optim.Adadelta([{"params": params[:-2]}, {"params": head, "lr": ref.LR / 2}],
                                lr=ref.LR, rho=ref.RHO, eps=ref.EPS, weight_decay=ref.WEIGHT_DECAY)


def factory():
    return dict(ref.recipe(ref.Net()), optimizer=optimizer)
