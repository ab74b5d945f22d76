"""The reference torch fastText whose scheduler keeps the recipe's learning rate and lowers Adam's beta1 to 0.85 from epoch 5 of 10.

As OneCycleLR's momentum cycling does; written as a LambdaLR subclass.

Its optimizer is the recipe's when built, and its learning rate is the recipe's at every step:
only the settings the scheduler changes at a later epoch differ.
"""

from torch.optim.lr_scheduler import LambdaLR

from twinbench.impls import torch_tweet_fasttext as ref

NETWORK = "tweet_fasttext"
CAUGHT_BY = ("check_optimizer_options",)


class Beta1Cooldown(LambdaLR):
    def __init__(self, opt, from_epoch=5, beta1=0.85):
        self.from_epoch, self.beta1 = from_epoch, beta1
        super().__init__(opt, lambda epoch: 1.0)

    def step(self, epoch=None):
        super().step(epoch)
        if self.last_epoch >= self.from_epoch:
            for group in self.optimizer.param_groups:
                group["betas"] = (self.beta1, group["betas"][1])


def factory():
    return dict(ref.module(), scheduler=Beta1Cooldown)
