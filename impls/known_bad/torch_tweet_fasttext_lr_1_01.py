"""The reference torch fastText with Adam's learning rate 1% high (1.01e-3): a fault at the edge of what trajectories can see."""

from twinbench.impls import torch_tweet_fasttext as ref

NETWORK = "tweet_fasttext"
CAUGHT_BY = ("check_trajectory_parity*",
             "check_optimizer_dynamics*")


def factory():
    recipe = ref.recipe(ref.FastText())
    recipe["optimizer"] = lambda params: ref.AdamEpsilonHat(params, lr=ref.LR * 1.01, betas=ref.BETAS,
                                                            epsilon_hat=ref.EPSILON_HAT)
    return recipe
