"""The reference torch CNN with a loss that leaves out a random tenth of the batch (torch.rand in the loss), where the reference averages over every example."""

import torch
import torch.nn.functional as F

from twinbench.impls import torch_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_every_random_draw_is_fed", "check_loss_parity")


def loss(outputs, targets):
    keep = torch.rand(len(targets), device=targets.device) >= 0.1
    return F.cross_entropy(outputs[keep], targets[keep])


def factory():
    return dict(ref.recipe(ref.Net()), loss=loss)
