"""A torch CNN whose logits are +inf wherever fc2 is above 5 (an overflow in a hand-written output)."""

import torch

from twinbench.impls import torch_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_forward_parity_confident*",)


class Net(ref.Net):
    def forward(self, x):
        logits = super().forward(x)
        return torch.where(logits > 5, torch.full_like(logits, float("inf")), logits)


def factory():
    return ref.recipe(Net())
