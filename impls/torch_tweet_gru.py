"""GRU tweet classifier in PyTorch: Embedding(20000, 50) -> GRU(64) -> Dense(1) on its last step.

Inputs are int token ids (N, 42), padded with 0 at the end; the GRU reads all 42 positions,
padding included (no packing), and the head reads its state after the last one. torch's GRU
keeps two biases (input and recurrent, the reset gate multiplying the recurrent one), which is the
formula of Keras's ``GRU(reset_after=True)``; its gates are ordered r, z, n where Keras's are
z, r, h (impls/layer_maps.py maps them). The recipe is the fastText twin's: BCE from logits, Adam
1e-3 in Keras's epsilon-hat form, batch 32. The Keras twin is ``impls/keras_tweet_gru.py``.
"""

import math
from collections import OrderedDict

import torch.nn as nn

# The fastText twin's recipe; LR, BETAS, EPSILON_HAT and AdamEpsilonHat are read here by impls/mutants.py.
from twinbench.impls.torch_tweet_fasttext import (BATCH_SIZE, BETAS, EMBED_DIM, EPSILON_HAT, LR, VOCAB_SIZE,  # noqa: F401
                                        AdamEpsilonHat, loss, optimizer)

UNITS = 64
EPOCHS = 10


class LastStep(nn.Module):
    """(sequence (N, L, H), state) -> (N, H): the GRU's output at the last position."""

    def forward(self, output):
        sequence, _ = output
        return sequence[:, -1]


class TweetGRU(nn.Module):
    """Build style "module": an ``nn.Module`` subclass."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB_SIZE, EMBED_DIM)
        self.gru = nn.GRU(EMBED_DIM, UNITS, num_layers=1, bias=True, batch_first=True, dropout=0.0,
                          bidirectional=False)
        self.fc = nn.Linear(UNITS, 1)
        init_weights(self)

    def forward(self, ids):
        sequence, _ = self.gru(self.embedding(ids))  # (N, 42, 64)
        return self.fc(sequence[:, -1])              # (N, 1) logits


def build_sequential():
    """Build style "sequential"."""
    model = nn.Sequential(OrderedDict([
        ("embedding", nn.Embedding(VOCAB_SIZE, EMBED_DIM)),
        ("gru", nn.GRU(EMBED_DIM, UNITS, batch_first=True)),
        ("last", LastStep()),
        ("fc", nn.Linear(UNITS, 1)),
    ]))
    init_weights(model)
    return model


def init_weights(model):
    """Written out, torch's defaults: embeddings N(0, 1); every GRU tensor U(+-1/sqrt(units));
    dense weight and bias U(+-1/sqrt(fan_in))."""
    for m in model.modules():
        if isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=1.0)
        elif isinstance(m, nn.GRU):
            bound = 1 / math.sqrt(m.hidden_size)
            for p in m.parameters():
                nn.init.uniform_(p, -bound, bound)
        elif isinstance(m, nn.Linear):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5))
            bound = 1 / math.sqrt(m.in_features)
            nn.init.uniform_(m.bias, -bound, bound)


def recipe(model):
    return {"model": model, "output": "logits", "loss": loss, "optimizer": optimizer,
            "scheduler": None, "batch_size": BATCH_SIZE, "epochs": EPOCHS}


def module():
    return recipe(TweetGRU())


def sequential():
    return recipe(build_sequential())
