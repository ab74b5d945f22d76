"""A torch CNN that returns logits shaped (N, 10, 1) instead of (N, 10)."""

from twinbench.impls import torch_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_output_shape*", "check_forward_parity*")


class Net(ref.Net):
    def forward(self, x):
        return super().forward(x).unsqueeze(-1)


def factory():
    return ref.recipe(Net())
