"""The reference torch CNN whose scheduler also turns on weight decay (1e-4) from epoch 7 of 14.

A StepLR subclass, as a user fighting overfitting late in training might write it.

Its optimizer is the recipe's when built, and its learning rate is the recipe's at every step:
only a setting the scheduler changes at a later epoch differs.
"""

from torch.optim.lr_scheduler import StepLR

from twinbench.impls import torch_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_optimizer_options",)


class StepLRLateDecay(StepLR):
    def step(self, epoch=None):
        super().step(epoch)
        if self.last_epoch >= 7:
            for group in self.optimizer.param_groups:
                group["weight_decay"] = 1e-4


def scheduler(opt):
    return StepLRLateDecay(opt, step_size=1, gamma=ref.GAMMA)


def factory():
    return dict(ref.recipe(ref.Net()), scheduler=scheduler)
