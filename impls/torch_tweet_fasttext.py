"""fastText tweet classifier in PyTorch: Embedding(20000, 50) -> mean over the 42 positions -> Dense(1).

Inputs are int token ids (N, 42), 0 = padding. The mean runs over all 42 positions, padding
included, exactly as Keras's ``GlobalAveragePooling1D`` does without a mask. The model returns
one logit per tweet; the loss is BCE from logits. The Keras twin is
``impls/keras_tweet_fasttext.py``.
"""

import math
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB_SIZE = 20000
EMBED_DIM = 50
SEQ_LEN = 42
# Recipe: Adam 1e-3, batch 32. Every value explicit.
LR = 1e-3
BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
BATCH_SIZE = 32
EPOCHS = 10


class GlobalAveragePool1d(nn.Module):
    """(N, L, C) -> (N, C): the mean over the sequence axis (dim 1)."""

    def forward(self, x):
        return x.mean(dim=1)


class FastText(nn.Module):
    """Build style "module": an ``nn.Module`` subclass."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB_SIZE, EMBED_DIM)
        self.pool = GlobalAveragePool1d()
        self.fc = nn.Linear(EMBED_DIM, 1)
        init_weights(self)

    def forward(self, ids):
        x = self.embedding(ids)     # (N, 42, 50)
        x = self.pool(x)            # (N, 50)
        return self.fc(x)           # (N, 1) logits


def build_sequential():
    """Build style "sequential"."""
    model = nn.Sequential(OrderedDict([
        ("embedding", nn.Embedding(VOCAB_SIZE, EMBED_DIM)),
        ("pool", GlobalAveragePool1d()),
        ("fc", nn.Linear(EMBED_DIM, 1)),
    ]))
    init_weights(model)
    return model


def init_weights(model):
    """Written out: embeddings N(0, 1); dense weight and bias U(+-1/sqrt(fan_in))."""
    for m in model.modules():
        if isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=1.0)
        elif isinstance(m, nn.Linear):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5))
            bound = 1 / math.sqrt(m.in_features)
            nn.init.uniform_(m.bias, -bound, bound)


def loss(outputs, targets):
    """BCE from logits; targets (N,) float {0, 1} are shaped like the (N, 1) outputs."""
    return F.binary_cross_entropy_with_logits(outputs, targets.reshape(outputs.shape), reduction="mean")


def optimizer(params):
    return torch.optim.Adam(params, lr=LR, betas=BETAS, eps=ADAM_EPS, weight_decay=0.0, amsgrad=False)


def recipe(model):
    return {"model": model, "output": "logits", "loss": loss, "optimizer": optimizer,
            "scheduler": None, "batch_size": BATCH_SIZE, "epochs": EPOCHS}


def module():
    return recipe(FastText())


def sequential():
    return recipe(build_sequential())
