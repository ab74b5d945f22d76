"""The reference torch CNN whose schedule stops decaying after epoch 10 (a floor at 0.7**10): the same learning rate as the recipe's for the first 11 epochs of 14."""

from torch.optim.lr_scheduler import LambdaLR

from twinbench.impls import torch_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_lr_schedule_parity*",)


def scheduler(opt):
    return LambdaLR(opt, lambda epoch: ref.GAMMA ** min(epoch, 10))


def factory():
    return dict(ref.recipe(ref.Net()), scheduler=scheduler)
