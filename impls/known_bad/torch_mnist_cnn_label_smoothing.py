"""The reference torch CNN trained with F.cross_entropy(label_smoothing=0.1)."""

import torch.nn.functional as F

from twinbench.impls import torch_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_loss_parity", "check_gradient_parity*", "check_trajectory_parity*")


def factory():
    recipe = ref.module()
    recipe["loss"] = lambda logits, y: F.cross_entropy(logits, y, label_smoothing=0.1)
    return recipe
