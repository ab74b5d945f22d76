"""A torch CNN whose __init__ raises (a candidate that cannot even be built)."""

from twinbench.impls import torch_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_*",)


class Net(ref.Net):
    def __init__(self):
        super().__init__()
        raise RuntimeError("fc3 is not defined")


def factory():
    return ref.recipe(Net())
