"""MNIST CNN in PyTorch: the pytorch/examples net, outputting logits, with its recipe spelled out.

    conv1 -> relu -> conv2 -> relu -> pool -> dropout1 -> flatten -> fc1 -> relu -> dropout2 -> fc2

Inputs are normalised float32 images (N, 1, 28, 28). The model returns logits; the loss applies
log-softmax itself (``F.cross_entropy``), and probabilities come from a separate predict step.
The Keras twin is ``impls/keras_mnist_cnn.py``: same layers, same names, same order.
"""

import math
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim.lr_scheduler import StepLR

# Recipe (pytorch/examples mnist/main.py). Every value explicit: no framework default relied on.
LR = 1.0           # Adadelta learning rate
RHO = 0.9          # Adadelta decay of the squared-gradient averages
EPS = 1e-6         # Adadelta epsilon
WEIGHT_DECAY = 0.0
GAMMA = 0.7        # LR x 0.7 after every epoch
BATCH_SIZE = 64
TEST_BATCH_SIZE = 1000
EPOCHS = 14


class Net(nn.Module):
    """Build style "module": an ``nn.Module`` subclass, as in pytorch/examples."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3, stride=1, padding=0)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, stride=1, padding=0)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.dropout1 = nn.Dropout(p=0.25)
        self.flatten = nn.Flatten(start_dim=1)   # (N, 64, 12, 12) -> (N, 9216), channel-major
        self.fc1 = nn.Linear(9216, 128)
        self.dropout2 = nn.Dropout(p=0.5)
        self.fc2 = nn.Linear(128, 10)
        init_weights(self)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = self.pool(x)
        x = self.dropout1(x)
        x = self.flatten(x)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        return self.fc2(x)  # logits


def build_sequential():
    """Build style "sequential": the same layers in an ``nn.Sequential``."""
    model = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 32, kernel_size=3, stride=1, padding=0)),
        ("relu1", nn.ReLU()),
        ("conv2", nn.Conv2d(32, 64, kernel_size=3, stride=1, padding=0)),
        ("relu2", nn.ReLU()),
        ("pool", nn.MaxPool2d(kernel_size=2, stride=2)),
        ("dropout1", nn.Dropout(p=0.25)),
        ("flatten", nn.Flatten(start_dim=1)),
        ("fc1", nn.Linear(9216, 128)),
        ("relu3", nn.ReLU()),
        ("dropout2", nn.Dropout(p=0.5)),
        ("fc2", nn.Linear(128, 10)),
    ]))
    init_weights(model)
    return model


def init_weights(model):
    """torch's layer initialisation, written out: weight U(+-1/sqrt(fan_in)) (kaiming_uniform
    with a=sqrt(5)) and bias U(+-1/sqrt(fan_in)). The Keras twin sets the same distributions."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5))
            nn.init.uniform_(m.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))


def loss(outputs, targets):
    """Cross-entropy from logits, mean over the batch."""
    return F.cross_entropy(outputs, targets, reduction="mean", label_smoothing=0.0)


def optimizer(params):
    return torch.optim.Adadelta(params, lr=LR, rho=RHO, eps=EPS, weight_decay=WEIGHT_DECAY)


def scheduler(opt):
    """Stepped once per epoch by the training loop, as in pytorch/examples."""
    return StepLR(opt, step_size=1, gamma=GAMMA)


def recipe(model):
    return {"model": model, "output": "logits", "loss": loss, "optimizer": optimizer,
            "scheduler": scheduler, "batch_size": BATCH_SIZE, "epochs": EPOCHS,
            "channels_last": True}  # an execution choice: NHWC memory, ~20% faster oneDNN training


# Factories: zero-argument callables, the same contract a user's --impl follows.
def module():
    return recipe(Net())


def sequential():
    return recipe(build_sequential())
