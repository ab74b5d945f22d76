"""A fastText tweets model that pools with a functional .mean(dim=1) (no pool module) and a single-logit head."""

import torch.nn as nn
import torch.nn.functional as F

from twinbench.impls.torch_tweet_fasttext import optimizer  # Adam 1e-3 in Keras's epsilon-hat form

NETWORK = "tweet_fasttext"


class Tweets(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20000, 50)
        self.head = nn.Linear(50, 1)

    def forward(self, ids):
        return self.head(self.emb(ids).mean(dim=1))


def factory():
    return {"model": Tweets(), "output": "logits", "loss": lambda z, y: F.binary_cross_entropy_with_logits(z.view(-1), y), "optimizer": optimizer}
