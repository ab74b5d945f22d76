"""The reference torch CNN applying conv2's kernel transposed (height <-> width): what a port computes
when it moves a Keras HWIO kernel to torch as (O, I, W, H) instead of (O, I, H, W). The parameter
shapes are the reference's (3 x 3 is square), so every weight transfers and nothing else complains."""

import torch.nn.functional as F

from twinbench.impls import torch_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_forward_parity*", "check_gradient_parity*", "check_trajectory_parity*")


class Net(ref.Net):
    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(F.conv2d(x, self.conv2.weight.transpose(2, 3), self.conv2.bias))
        x = self.dropout1(self.pool(x))
        x = F.relu(self.fc1(self.flatten(x)))
        return self.fc2(self.dropout2(x))


def factory():
    return ref.recipe(Net())
