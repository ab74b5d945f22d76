"""The reference torch CNN written with F.dropout(x, p, training=self.training) instead of dropout modules."""

import torch.nn.functional as F

from twinbench.impls import torch_mnist_cnn as ref

NETWORK = "mnist_cnn"


class Net(ref.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = ref.nn.Conv2d(1, 32, 3)
        self.conv2 = ref.nn.Conv2d(32, 64, 3)
        self.fc1 = ref.nn.Linear(9216, 128)
        self.fc2 = ref.nn.Linear(128, 10)
        ref.init_weights(self)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        x = F.dropout(x, 0.25, training=self.training)
        x = F.relu(self.fc1(x.flatten(1)))
        x = F.dropout(x, 0.5, training=self.training)
        return self.fc2(x)


def factory():
    recipe = ref.recipe(Net())
    recipe.pop("channels_last")
    return recipe
