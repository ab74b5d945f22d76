"""A torch CNN with an extra learnable temperature on the logits (an nn.Parameter the reference does not have)."""

import torch

from twinbench.impls import torch_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_param_count_per_layer", "check_param_count_total", "check_forward_parity*",
             "check_gradient_parity*")


class Net(ref.Net):
    def __init__(self):
        super().__init__()
        self.temperature = torch.nn.Parameter(torch.ones(()))

    def forward(self, x):
        return super().forward(x) / self.temperature


def factory():
    return ref.recipe(Net())
