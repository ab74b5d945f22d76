"""The MNIST CNN with BatchNorm as a spec: the MNIST CNN's images and target, BatchNorm after each
convolution and after the hidden dense layer; every other value is a literal of
fixtures/expected.py or fixtures/tolerances.py, gathered here by name.

Its data are the MNIST splits dequantised: each pixel moved by a uniform draw within half a grey
level (seeded, the same in every run), so that no two pixels of an image are exactly equal. On the
raw images the constant background gives exactly equal activations, which a BatchNorm centres and
the ReLU then passes into the max-pool windows; at such a tie the gradient goes to whichever
element each framework picks, and both picks are correct. Measured (2026-12-07, the two
references' training-mode gradients on the 64-image parity batch): 4.1% of fc1's largest gradient
apart on the raw images, 5.9e-6 with a noise of +-1e-3 that breaks the ties. Half a grey level is
below what the images can say, so the data are the same images.
"""

import numpy as np

from twinbench.fixtures import expected as E
from twinbench.impls.networks import from_literals
from twinbench.impls.networks import mnist_cnn

NAME = "mnist_bn"
DEQUANTISE_SEED = {"train": 20261207, "test": 20261208}


def data(part: str):
    """The normalised MNIST split (fixtures/data.py), each pixel moved within +-half a grey level."""
    x, y = mnist_cnn.data(part)
    half_level = 0.5 / 255 / E.MNIST_NORMALISATION[1]
    noise = np.random.RandomState(DEQUANTISE_SEED[part]).uniform(-half_level, half_level, size=x.shape)
    return (x + noise).astype(np.float32), y


SPEC = from_literals(
    NAME,
    input=mnist_cnn.SPEC.input,
    target=mnist_cnn.SPEC.target,
    builders={
        "torch": {"module": "twinbench.impls.torch_mnist_bn:module", "sequential": "twinbench.impls.torch_mnist_bn:sequential"},
        "keras": {"sequential": "twinbench.impls.keras_mnist_bn:sequential", "functional": "twinbench.impls.keras_mnist_bn:functional",
                  "subclass": "twinbench.impls.keras_mnist_bn:subclass"},
    },
    data=data,
)
