"""The reference torch fastText with stock torch.optim.Adam(lr=1e-3): eps 1e-8 added after bias correction, not Keras's epsilon-hat."""

import torch

from twinbench.impls import torch_tweet_fasttext as ref

NETWORK = "tweet_fasttext"
CAUGHT_BY = ("check_optimizer_step_parity*",)


def factory():
    recipe = ref.module()
    recipe["optimizer"] = lambda params: torch.optim.Adam(params, lr=1e-3)
    return recipe
