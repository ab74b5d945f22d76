"""The reference torch CNN with its second dropout written by hand on a private torch.Generator (seeded once, for reproducibility), so torch's global generator never advances."""

import torch

from twinbench.impls import torch_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_every_random_draw_is_fed", "check_stochastic_ops")


class PrivateDropout(torch.nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p, self.generator = p, torch.Generator().manual_seed(1234)

    def forward(self, x):
        if not self.training:
            return x
        keep = torch.rand(x.shape, generator=self.generator) >= self.p
        return x * keep.to(x.dtype) / (1 - self.p)


class Net(ref.Net):
    def __init__(self):
        super().__init__()
        self.dropout2 = PrivateDropout(0.5)


def factory():
    return ref.recipe(Net())
