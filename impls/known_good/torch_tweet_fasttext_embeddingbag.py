"""A fastText tweets model built on nn.EmbeddingBag(mode="mean"), which fuses the lookup and the mean over all 42 positions."""

import torch.nn as nn
import torch.nn.functional as F

from twinbench.impls.torch_tweet_fasttext import optimizer  # Adam 1e-3 in Keras's epsilon-hat form

NETWORK = "tweet_fasttext"


class BagOfEmbeddings(nn.Module):
    def __init__(self, vocab=20000, dim=50):
        super().__init__()
        self.bag = nn.EmbeddingBag(vocab, dim, mode="mean")   # 2-D input: each row is one bag
        self.out = nn.Linear(dim, 1)

    def forward(self, ids):
        return self.out(self.bag(ids))


def factory():
    return {
        "model": BagOfEmbeddings(),
        "output": "logits",
        "loss": lambda logits, y: F.binary_cross_entropy_with_logits(logits.squeeze(1), y),
        "optimizer": optimizer,
    }
