"""The reference torch fastText with an extra Dropout(0.2) before the head (the reference has no stochastic op)."""

from twinbench.impls import torch_tweet_fasttext as ref

NETWORK = "tweet_fasttext"
CAUGHT_BY = ("check_stochastic_ops", "check_train_mode_parity*", "check_trajectory_parity*")


class FastText(ref.FastText):
    def __init__(self):
        super().__init__()
        self.dropout = ref.nn.Dropout(0.2)

    def forward(self, ids):
        return self.fc(self.dropout(self.pool(self.embedding(ids))))


def factory():
    return ref.recipe(FastText())
