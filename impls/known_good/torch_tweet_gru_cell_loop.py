"""A GRU tweet classifier written with nn.GRUCell in a loop over time-major steps, its state read after the last one."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from twinbench.impls.torch_tweet_gru import optimizer  # Adam 1e-3 in Keras's epsilon-hat form

NETWORK = "tweet_gru"


class CellLoop(nn.Module):
    def __init__(self, vocab=20000, dim=50, units=64):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.cell = nn.GRUCell(dim, units)          # weight_ih, weight_hh, bias_ih, bias_hh: torch's GRU gates
        self.head = nn.Linear(units, 1)
        nn.init.normal_(self.embed.weight)
        for p in self.cell.parameters():
            nn.init.uniform_(p, -1 / math.sqrt(units), 1 / math.sqrt(units))

    def forward(self, ids):
        steps = self.embed(ids).transpose(0, 1)      # (42, N, 50): one step at a time
        h = steps.new_zeros(steps.shape[1], self.cell.hidden_size)
        for x in steps:
            h = self.cell(x, h)
        return self.head(h)


def factory():
    return {"model": CellLoop(), "output": "logits",
            "loss": lambda logits, y: F.binary_cross_entropy_with_logits(logits, y.view(-1, 1)),
            "optimizer": optimizer, "batch_size": 32}
