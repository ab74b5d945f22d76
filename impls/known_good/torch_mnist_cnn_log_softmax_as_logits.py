"""pytorch/examples' Net (log_softmax output) passed with the default output="logits": log-softmax outputs are logits too."""

import torch.nn.functional as F

from twinbench.impls import torch_mnist_cnn as ref
from twinbench.impls.known_good.torch_mnist_cnn_examples import Net

NETWORK = "mnist_cnn"


def factory():
    return {"model": Net(), "loss": lambda out, target: F.nll_loss(out, target),
            "optimizer": ref.optimizer, "scheduler": ref.scheduler}
