"""The reference torch fastText with AMSGrad switched on (epsilon-hat form kept): sqrt of the running max of v in the denominator.

With a constant gradient v only grows, so its running max is v itself and one gradient replayed
a few times cannot tell; it differs once v falls (a batch with smaller gradients, or an
embedding row absent from a batch).
"""

from twinbench.impls import torch_tweet_fasttext as ref

NETWORK = "tweet_fasttext"
CAUGHT_BY = ("check_optimizer_dynamics*",)


def optimizer(params):
    opt = ref.optimizer(params)
    for group in opt.param_groups:
        group["amsgrad"] = True
    return opt


def factory():
    recipe = ref.module()
    recipe["optimizer"] = optimizer
    return recipe
