"""pytorch/examples' mnist/main.py Net as published: log_softmax output, nll_loss, Adadelta(lr=1.0), StepLR(gamma=0.7)."""

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.optim.lr_scheduler import StepLR

NETWORK = "mnist_cnn"


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        output = F.log_softmax(x, dim=1)
        return output


def factory():
    return {
        "model": Net(),
        "output": "log_probs",
        "loss": lambda output, target: F.nll_loss(output, target),
        "optimizer": lambda params: optim.Adadelta(params, lr=1.0),   # torch's rho 0.9, eps 1e-6
        "scheduler": lambda optimizer: StepLR(optimizer, step_size=1, gamma=0.7),
    }
