"""The reference torch CNN without the ReLU after fc1 (a missing activation)."""

import torch.nn.functional as F

from twinbench.impls import torch_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_forward_parity*", "check_gradient_parity*", "check_trajectory_parity*")


class Net(ref.Net):
    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = self.dropout1(self.pool(x))
        x = self.fc1(self.flatten(x))          # no ReLU here
        return self.fc2(self.dropout2(x))


def factory():
    return ref.recipe(Net())
