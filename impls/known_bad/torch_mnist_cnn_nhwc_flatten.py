"""The reference torch CNN flattening in NHWC order (permute before flatten), as if Keras's order were copied: fc1's rows are read in the wrong order."""

import torch.nn.functional as F

from twinbench.impls import torch_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_forward_parity*", "check_gradient_parity*", "check_trajectory_parity*")


class Net(ref.Net):
    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = self.dropout1(self.pool(x))
        x = x.permute(0, 2, 3, 1).flatten(1)   # (N, 12, 12, 64) order
        x = self.dropout2(F.relu(self.fc1(x)))
        return self.fc2(x)


def factory():
    return ref.recipe(Net())
