"""The reference torch CNN with conv2 of kernel size 5 (a changed kernel size: fc1 then reads 64x11x11 features)."""

from twinbench.impls import torch_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_layer_shapes*", "check_param_count_per_layer",
             "check_param_count_total", "check_forward_parity*")


class Net(ref.Net):
    def __init__(self):
        super().__init__()
        self.conv2 = ref.nn.Conv2d(32, 64, kernel_size=5)
        self.fc1 = ref.nn.Linear(64 * 11 * 11, 128)


def factory():
    return ref.recipe(Net())
