"""The reference torch CNN with StepLR gamma=0.9 where the recipe decays by 0.7 per epoch."""

from torch.optim.lr_scheduler import StepLR

from twinbench.impls import torch_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_lr_schedule_parity*",)


def factory():
    recipe = ref.module()
    recipe["scheduler"] = lambda opt: StepLR(opt, step_size=1, gamma=0.9)
    return recipe
