"""The reference torch fastText with a max over the 42 positions where the reference averages (pooling of the wrong kind)."""

from twinbench.impls import torch_tweet_fasttext as ref

NETWORK = "tweet_fasttext"
CAUGHT_BY = ("check_forward_parity*", "check_gradient_parity*", "check_trajectory_parity*")


class MaxPool(ref.nn.Module):
    def forward(self, x):
        return x.max(dim=1).values


class FastText(ref.FastText):
    def __init__(self):
        super().__init__()
        self.pool = MaxPool()


def factory():
    return ref.recipe(FastText())
