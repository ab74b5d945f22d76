"""examples/pair.py with one port fault, as ports often have it: the Keras twin's GELU is the tanh
approximation (keras.activations.gelu(approximate=True), the form of many TensorFlow models),
where torch's nn.GELU() is exact. Every value differs from the exact form by at most ~5e-4.

    pytest --network examples/pair_faulty.py:SPEC      # rejected, exit 1
"""

import dataclasses

import keras

from pair import SPEC as CORRECT
from pair import IN, keras_compiled, keras_layers


def keras_tanh_gelu():
    def gelu(x):
        return keras.activations.gelu(x, approximate=True)

    return keras_compiled(keras.Sequential([keras.Input((IN,)), *keras_layers(gelu)]))


SPEC = dataclasses.replace(CORRECT, name="example_mlp_faulty",
                           builders={**CORRECT.builders, "keras": {"sequential": keras_tanh_gelu}})
