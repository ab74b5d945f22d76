"""A correct torch port in the functional style: the parameters live in nn.Conv2d / nn.Linear
modules, but the forward calls F.conv2d and F.linear on their weights instead of calling the
modules, and F.max_pool2d / F.dropout instead of layer objects."""

import torch.nn as nn
import torch.nn.functional as F

from twinbench.impls import torch_mnist_cnn as ref

NETWORK = "mnist_cnn"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)
        ref.init_weights(self)

    def forward(self, x):
        x = F.relu(F.conv2d(x, self.conv1.weight, self.conv1.bias))
        x = F.relu(F.conv2d(x, self.conv2.weight, self.conv2.bias))
        x = F.dropout(F.max_pool2d(x, 2), 0.25, self.training)
        x = F.relu(F.linear(x.flatten(1), self.fc1.weight, self.fc1.bias))
        x = F.dropout(x, 0.5, self.training)
        return F.linear(x, self.fc2.weight, self.fc2.bias)


def factory():
    return ref.recipe(Net())
