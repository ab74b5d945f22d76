"""The reference torch CNN with nn.Dropout2d(0.25) (whole channels) after pooling, where the reference drops elements."""

from twinbench.impls import torch_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_stochastic_ops", "check_train_mode_parity*", "check_trajectory_parity*")


class Net(ref.Net):
    def __init__(self):
        super().__init__()
        self.dropout1 = ref.nn.Dropout2d(0.25)


def factory():
    return ref.recipe(Net())
