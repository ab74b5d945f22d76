"""The reference torch CNN that freezes its first convolution after 150 training passes (a
feature-extractor freeze meant for a fine-tuning run, left in the port): every check that trains
fewer steps sees the reference, and the trajectory sees conv1 stop moving from step 150."""

from twinbench.impls import torch_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_trajectory_parity*",)
FREEZE_AFTER = 150


class Net(ref.Net):
    def __init__(self):
        super().__init__()
        self.passes = 0

    def forward(self, x):
        if self.training:
            self.passes += 1
            if self.passes > FREEZE_AFTER:
                self.conv1.requires_grad_(False)
        return super().forward(x)


def factory():
    return ref.recipe(Net())
