"""An unnamed nn.Sequential MNIST CNN with nn.ReLU/nn.MaxPool2d modules, logits output and nn.CrossEntropyLoss."""

import torch
import torch.nn as nn

NETWORK = "mnist_cnn"


def factory():
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(),
        nn.Conv2d(32, 64, 3), nn.ReLU(),
        nn.MaxPool2d(2), nn.Dropout(0.25), nn.Flatten(),
        nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(128, 10),
    )
    return {
        "model": model,
        "output": "logits",
        "loss": nn.CrossEntropyLoss(),
        "optimizer": lambda params: torch.optim.Adadelta(params, lr=1.0, rho=0.9, eps=1e-6),
        "scheduler": lambda opt: torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.7),
    }
