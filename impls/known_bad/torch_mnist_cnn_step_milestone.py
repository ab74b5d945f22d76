"""The reference torch CNN whose optimizer halves its learning rate after 150 steps (a milestone
meant in epochs, counted in optimizer steps): the schedule the recipe declares, stepped per epoch,
is the reference's, and so is every step before the 151st."""

import torch

from twinbench.impls import torch_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_trajectory_parity*",)
MILESTONE = 150


class Adadelta(torch.optim.Adadelta):
    def step(self, closure=None):
        self.taken = getattr(self, "taken", 0) + 1
        if self.taken == MILESTONE + 1:
            for group in self.param_groups:
                group["lr"] *= 0.5
        return super().step(closure)


def optimizer(params):
    return Adadelta(params, lr=ref.LR, rho=ref.RHO, eps=ref.EPS, weight_decay=ref.WEIGHT_DECAY)


def factory():
    return dict(ref.recipe(ref.Net()), optimizer=optimizer)
