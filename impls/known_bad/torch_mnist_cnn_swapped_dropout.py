"""The reference torch CNN with the dropout rates swapped (0.5 after pooling, 0.25 after fc1)."""

from twinbench.impls import torch_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_stochastic_ops", "check_train_mode_parity*")


class Net(ref.Net):
    def __init__(self):
        super().__init__()
        self.dropout1, self.dropout2 = ref.nn.Dropout(0.5), ref.nn.Dropout(0.25)


def factory():
    return ref.recipe(Net())
