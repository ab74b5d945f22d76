"""The reference torch CNN with Adadelta eps=1e-8 where the recipe has 1e-6 (the first steps are 10x smaller)."""

import torch

from twinbench.impls import torch_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_optimizer_step_parity*", "check_trajectory_parity*")


def factory():
    recipe = ref.module()
    recipe["optimizer"] = lambda params: torch.optim.Adadelta(params, lr=1.0, rho=0.9, eps=1e-8)
    return recipe
