"""The reference torch fastText with Adam weight_decay=1e-4 (torch's coupled L2: 1e-4 * theta added to every gradient), epsilon-hat form kept."""

from twinbench.impls import torch_tweet_fasttext as ref

NETWORK = "tweet_fasttext"
CAUGHT_BY = ("check_optimizer_dynamics*", "check_optimizer_step_parity*", "check_trajectory_parity*")


def optimizer(params):
    opt = ref.optimizer(params)
    for group in opt.param_groups:
        group["weight_decay"] = 1e-4
    return opt


def factory():
    recipe = ref.module()
    recipe["optimizer"] = optimizer
    return recipe
