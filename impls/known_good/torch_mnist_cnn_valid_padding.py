"""A torch MNIST CNN written with padding="valid", tuple kernel sizes, F.dropout and the max-pool before the ReLU (they commute), trained by MultiStepLR written per epoch."""

import torch
import torch.nn as nn
import torch.nn.functional as F

NETWORK = "mnist_cnn"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1), padding="valid")
        self.conv2 = nn.Conv2d(32, 64, kernel_size=(3, 3), padding="valid", padding_mode="reflect")
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))  # max-pool and ReLU commute
        x = F.dropout(x, 0.25, self.training)
        x = F.relu(self.fc1(x.flatten(1)))
        x = F.dropout(x, 0.5, self.training)
        return self.fc2(x)


def factory():
    return {
        "model": Net(),
        "output": "logits",
        "loss": F.cross_entropy,
        "optimizer": lambda params: torch.optim.Adadelta(params, lr=1.0, rho=0.9, eps=1e-6),
        "scheduler": lambda opt: torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(range(1, 20)), gamma=0.7),
    }
