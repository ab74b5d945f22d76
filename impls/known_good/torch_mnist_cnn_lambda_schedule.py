"""A correct torch port whose learning-rate decay is written in closed form: LambdaLR with 0.7 ** epoch.

pytorch/examples' StepLR multiplies by 0.7 once per epoch. The two rates part by an ulp at some epochs (0.7 ** 4 is 0.24009999999999995, 0.7 * 0.7 * 0.7 * 0.7 is
0.24009999999999992): the same schedule, judged by value within fixtures/tolerances.py LR_ULPS."""

from torch.optim.lr_scheduler import LambdaLR

from twinbench.impls import torch_mnist_cnn as ref

NETWORK = "mnist_cnn"


def scheduler(opt):
    return LambdaLR(opt, lambda epoch: ref.GAMMA ** epoch)


def factory():
    return dict(ref.recipe(ref.Net()), scheduler=scheduler)
