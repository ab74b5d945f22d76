"""The reference torch CNN whose first dropout is nn.Dropout3d(0.25) on the pooled features viewed as (N, 64, 1, 12, 12): whole channels dropped, where the reference drops elements."""

import torch.nn.functional as F

from twinbench.impls import torch_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_stochastic_ops", "check_train_mode_parity*", "check_trajectory_parity*")


class Net(ref.Net):
    def __init__(self):
        super().__init__()
        self.dropout1 = ref.nn.Dropout3d(0.25)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = self.pool(x)
        x = self.dropout1(x.unsqueeze(2)).squeeze(2)  # (N, C, 1, H, W): one draw per (N, C)
        x = self.flatten(x)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        return self.fc2(x)


def factory():
    return ref.recipe(Net())
