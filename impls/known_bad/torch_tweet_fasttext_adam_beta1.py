"""The reference torch fastText with Adam beta1 0.91 where the recipe has 0.9 (epsilon-hat form kept, everything else right).

Invisible to one gradient replayed a few times: with a constant gradient the bias-corrected
first moment is that gradient for any beta1. Only changing gradients show it.
"""

from twinbench.impls import torch_tweet_fasttext as ref

NETWORK = "tweet_fasttext"
CAUGHT_BY = ("check_optimizer_dynamics*",)


def optimizer(params):
    return ref.AdamEpsilonHat(params, lr=ref.LR, betas=(0.91, 0.999), epsilon_hat=ref.EPSILON_HAT)


def factory():
    recipe = ref.module()
    recipe["optimizer"] = optimizer
    return recipe
