"""A correct torch port that flattens with x.view(x.size(0), -1), as a great many tutorials and
ports do, with pytorch/examples' recipe written out: .view needs the contiguous NCHW activations
that pytorch/examples' own DataLoader batches give (a batch laid out channels-last makes it raise)."""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim.lr_scheduler import StepLR

from twinbench.impls import torch_mnist_cnn as ref

NETWORK = "mnist_cnn"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)
        ref.init_weights(self)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = self.dropout1(x)
        x = x.view(x.size(0), -1)
        x = self.dropout2(F.relu(self.fc1(x)))
        return self.fc2(x)


def factory():  # pytorch/examples mnist/main.py's recipe, written out as a port would
    return {"model": Net(), "output": "logits", "loss": F.cross_entropy,
            "optimizer": lambda params: torch.optim.Adadelta(params, lr=1.0),
            "scheduler": lambda opt: StepLR(opt, step_size=1, gamma=0.7), "batch_size": 64, "epochs": 14}
