"""The reference torch fastText with torch.optim.Adam(eps=1e-7): Keras's epsilon copied into torch's placement, after bias correction.

The natural single-epsilon slip of a torch port: Keras's Adam says epsilon=1e-7, so the port
writes torch's Adam with eps=1e-7 (lr, betas, no weight decay all right). torch adds eps to
sqrt(v_hat), Keras to sqrt(v); the recipe's equivalent torch eps is 1e-7 / sqrt(1 - 0.999**t)
(3.2e-6 at step 1, 7.1e-7 at step 20), so this port's eps is 32x too small at step 1 and the
steps of weights with small gradients come out too large.
"""

import torch

from twinbench.impls import torch_tweet_fasttext as ref

NETWORK = "tweet_fasttext"
CAUGHT_BY = ("check_optimizer_dynamics*", "check_optimizer_step_parity*")


def optimizer(params):
    return torch.optim.Adam(params, lr=ref.LR, betas=ref.BETAS, eps=1e-7, weight_decay=0.0, amsgrad=False,
                            foreach=False)


def factory():
    recipe = ref.module()
    recipe["optimizer"] = optimizer
    return recipe
