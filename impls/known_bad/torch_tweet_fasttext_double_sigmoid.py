"""A torch fastText whose forward ends in sigmoid, trained with BCEWithLogits: the sigmoid is applied twice."""

import torch
import torch.nn.functional as F

from twinbench.impls import torch_tweet_fasttext as ref

NETWORK = "tweet_fasttext"
CAUGHT_BY = ("check_loss_parity", "check_gradient_parity*", "check_trajectory_parity*")


class FastText(ref.FastText):
    def forward(self, ids):
        return torch.sigmoid(super().forward(ids))


def factory():
    return {"model": FastText(), "output": "probs", "optimizer": ref.optimizer,
            "loss": lambda p, y: F.binary_cross_entropy_with_logits(p.view(-1), y)}
