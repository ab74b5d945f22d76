"""The reference torch CNN with two param groups at the same learning rate, whose schedules part after epoch 2: the dense layers then decay x0.5 per epoch, the convolutions x0.7."""

import torch
from torch.optim.lr_scheduler import LambdaLR

from twinbench.impls import torch_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_lr_schedule_parity*",)


def optimizer(params):
    params = list(params)  # conv1, conv2 (4 tensors), then fc1, fc2
    return torch.optim.Adadelta([{"params": params[:4]}, {"params": params[4:]}],
                                lr=ref.LR, rho=ref.RHO, eps=ref.EPS, weight_decay=ref.WEIGHT_DECAY)


def scheduler(opt):
    convs = lambda epoch: ref.GAMMA ** epoch  # noqa: E731
    dense = lambda epoch: ref.GAMMA ** min(epoch, 2) * 0.5 ** max(epoch - 2, 0)  # noqa: E731
    return LambdaLR(opt, [convs, dense])


def factory():
    return dict(ref.recipe(ref.Net()), optimizer=optimizer, scheduler=scheduler)
