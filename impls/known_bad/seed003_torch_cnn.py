"""Seed 003's PyTorch MNIST CNN (mikhailklassen/CNN_MNIST, MNIST_PyTorch.ipynb): softmax output fed to F.cross_entropy.

``forward`` ends in ``F.softmax`` and training uses ``F.cross_entropy``, which applies
(log-)softmax again: the loss and every gradient are those of a double softmax. The forward
pass itself is the reference network, so only the loss and gradient checks can catch it.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim.lr_scheduler import StepLR

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_loss_parity", "check_gradient_parity*", "check_trajectory_parity*", "check_train_mode_parity*")


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        x = self.fc2(x)
        return F.softmax(x, dim=1)


def factory():
    return {
        "model": Net(),
        "output": "probs",
        "loss": lambda outputs, targets: F.cross_entropy(outputs, targets),  # the double softmax
        "optimizer": lambda params: torch.optim.Adadelta(params, lr=1.0),
        "scheduler": lambda opt: StepLR(opt, step_size=1, gamma=0.7),
    }
