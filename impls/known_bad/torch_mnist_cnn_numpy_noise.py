"""The reference torch CNN plus training-time Gaussian input noise (std 0.1) drawn with numpy, a draw the shared masks cannot see."""

import numpy as np
import torch

from twinbench.impls import torch_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_every_random_draw_is_fed", "check_train_mode_parity*")


class Net(ref.Net):
    def forward(self, x):
        if self.training:
            x = x + torch.from_numpy(np.random.normal(0.0, 0.1, size=tuple(x.shape)).astype(np.float32)).to(x.device)
        return super().forward(x)


def factory():
    return ref.recipe(Net())
