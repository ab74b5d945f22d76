"""pytorch/examples' Net re-initialised "to match Keras": xavier_uniform_ weights and zero biases.

A porter who keeps the model in both frameworks and makes torch follow Keras's defaults (glorot
kernels, zero biases) trains from another distribution than pytorch/examples: conv1's bound
becomes sqrt(6/(9+288)) = 0.142 where torch's default is 1/3. Everything else is the published
example (impls/known_good/torch_mnist_cnn_examples.py).
"""

import torch.nn as nn

from twinbench.impls.known_good import torch_mnist_cnn_examples as examples

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_initial_weights_law",)


class Net(examples.Net):
    def __init__(self):
        super().__init__()
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)


def factory():
    return dict(examples.factory(), model=Net())
