"""MNIST CNN with BatchNorm in PyTorch: BatchNorm after each convolution and after the hidden dense
layer, Adam 1e-3, batch 128.

    conv1 -> bn1 -> relu -> pool -> conv2 -> bn2 -> relu -> pool -> flatten -> fc1 -> bn3 -> relu
    -> dropout -> fc2

Inputs are the normalised float32 images (N, 1, 28, 28); the model returns logits. BatchNorm keeps
torch's defaults, every one written out: momentum 0.1 (the weight of the new batch's statistic;
Keras's momentum is the weight of the old one, so its twin says 0.9), eps 1e-5 (Keras's default is
1e-3), affine, running statistics tracked. torch updates ``running_var`` with the unbiased batch
variance (n/(n-1)) where Keras uses the biased one: for bn3, n is the batch (128), 0.8% apart; the
checks that compare running statistics allow exactly that (fixtures/tolerances.py). The Adam is
the fastText twin's, in Keras's epsilon-hat form. The Keras twin is ``impls/keras_mnist_bn.py``.
"""

import math
from collections import OrderedDict

import torch.nn as nn
import torch.nn.functional as F

# Adam in Keras's epsilon-hat form, the fastText twin's (impls/mutants.py reads LR, BETAS, EPSILON_HAT here).
from twinbench.impls.torch_tweet_fasttext import BETAS, EPSILON_HAT, LR, AdamEpsilonHat  # noqa: F401

BATCH_SIZE = 128
EPOCHS = 5
BN_MOMENTUM = 0.1  # torch's: running = (1 - 0.1) * running + 0.1 * batch statistic
BN_EPS = 1e-5


def bn2d(channels):
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM, affine=True, track_running_stats=True)


def bn1d(features):
    return nn.BatchNorm1d(features, eps=BN_EPS, momentum=BN_MOMENTUM, affine=True, track_running_stats=True)


class Net(nn.Module):
    """Build style "module": an ``nn.Module`` subclass."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3, bias=False)
        self.bn1 = bn2d(32)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, bias=False)
        self.bn2 = bn2d(64)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.flatten = nn.Flatten(start_dim=1)   # (N, 64, 5, 5) -> (N, 1600), channel-major
        self.fc1 = nn.Linear(1600, 128, bias=False)
        self.bn3 = bn1d(128)
        self.dropout = nn.Dropout(p=0.5)
        self.fc2 = nn.Linear(128, 10)
        init_weights(self)

    def forward(self, x):
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        x = self.pool(F.relu(self.bn2(self.conv2(x))))
        x = F.relu(self.bn3(self.fc1(self.flatten(x))))
        return self.fc2(self.dropout(x))  # logits


def build_sequential():
    """Build style "sequential": the same layers in an ``nn.Sequential``."""
    model = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 32, kernel_size=3, bias=False)),
        ("bn1", bn2d(32)),
        ("relu1", nn.ReLU()),
        ("pool1", nn.MaxPool2d(kernel_size=2, stride=2)),
        ("conv2", nn.Conv2d(32, 64, kernel_size=3, bias=False)),
        ("bn2", bn2d(64)),
        ("relu2", nn.ReLU()),
        ("pool2", nn.MaxPool2d(kernel_size=2, stride=2)),
        ("flatten", nn.Flatten(start_dim=1)),
        ("fc1", nn.Linear(1600, 128, bias=False)),
        ("bn3", bn1d(128)),
        ("relu3", nn.ReLU()),
        ("dropout", nn.Dropout(p=0.5)),
        ("fc2", nn.Linear(128, 10)),
    ]))
    init_weights(model)
    return model


def init_weights(model):
    """torch's defaults, written out: conv and dense weight and bias U(+-1/sqrt(fan_in));
    BatchNorm gamma 1, beta 0, running mean 0, running variance 1."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5))
            if m.bias is not None:
                nn.init.uniform_(m.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.reset_parameters()


def loss(outputs, targets):
    """Cross-entropy from logits, mean over the batch."""
    return F.cross_entropy(outputs, targets, reduction="mean", label_smoothing=0.0)


def optimizer(params):
    return AdamEpsilonHat(params, lr=LR, betas=BETAS, epsilon_hat=EPSILON_HAT)


def recipe(model):
    return {"model": model, "output": "logits", "loss": loss, "optimizer": optimizer,
            "scheduler": None, "batch_size": BATCH_SIZE, "epochs": EPOCHS}


def module():
    return recipe(Net())


def sequential():
    return recipe(build_sequential())
