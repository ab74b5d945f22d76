"""The reference torch fastText averaging only non-padding positions, where the reference averages over all 42, padding included."""

from twinbench.impls import torch_tweet_fasttext as ref

NETWORK = "tweet_fasttext"
CAUGHT_BY = ("check_forward_parity*", "check_gradient_parity*", "check_trajectory_parity*")


class FastText(ref.FastText):
    def forward(self, ids):
        mask = (ids != 0).unsqueeze(-1).float()
        x = (self.embedding(ids) * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.fc(x)


def factory():
    return ref.recipe(FastText())
