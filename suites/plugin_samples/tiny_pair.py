"""A network that is not one of the references: a small MLP on synthetic features, declared as a
spec (impls/networks/), with its torch and Keras twins and a faulty Keras variant (tanh where the
torch twin has ReLU). suites/test_networks.py registers it and runs the catalogue's checks on it,
exactly as they run on the references."""

import math

import numpy as np

from impls.networks import Input, NetworkSpec, Target

B = "B"
IN, HIDDEN, CLASSES = 6, 8, 3


def data(part: str):
    """Deterministic synthetic features; the class is the argmax of a fixed projection."""
    rng = np.random.RandomState(0 if part == "train" else 1)
    x = rng.standard_normal((256 if part == "train" else 128, IN)).astype(np.float32)
    y = np.argmax(x @ np.random.RandomState(2).standard_normal((IN, CLASSES)), axis=1).astype(np.int64)
    return x, y


def torch_model():
    import torch

    class MLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = torch.nn.Linear(IN, HIDDEN)
            self.out = torch.nn.Linear(HIDDEN, CLASSES)

        def forward(self, x):
            return self.out(torch.relu(self.hidden(x)))

    return MLP()


def _keras(activation):
    import keras

    def uniform(fan_in):
        bound = 1 / math.sqrt(fan_in)
        return keras.initializers.RandomUniform(-bound, bound)

    return keras.Sequential([
        keras.Input((IN,)),
        keras.layers.Dense(HIDDEN, activation=activation, name="hidden", kernel_initializer=uniform(IN),
                           bias_initializer=uniform(IN)),
        keras.layers.Dense(CLASSES, name="out", kernel_initializer=uniform(HIDDEN), bias_initializer=uniform(HIDDEN)),
    ])


def keras_model():
    return _keras("relu")


def keras_tanh():
    """The faulty variant: tanh after the hidden layer."""
    return _keras("tanh")


SPEC = NetworkSpec(
    name="tiny_mlp",
    input=Input(shape=(IN,), kind="features", draw_range=(-4.0, 4.0), saturated=4.0),
    target=Target(kind="classes", classes=CLASSES),
    builders={"torch": {"module": f"{__name__}:torch_model"}, "keras": {"sequential": f"{__name__}:keras_model"}},
    data=data,
    output_shape=(B, CLASSES),
    param_layers=(("hidden", "dense", (B, IN), (B, HIDDEN)), ("out", "dense", (B, HIDDEN), (B, CLASSES))),
    canonical_weights={"hidden.kernel": (IN, HIDDEN), "hidden.bias": (HIDDEN,),
                       "out.kernel": (HIDDEN, CLASSES), "out.bias": (CLASSES,)},
    init_laws={"hidden.kernel": ("uniform", 1 / math.sqrt(IN)), "hidden.bias": ("uniform", 1 / math.sqrt(IN)),
               "out.kernel": ("uniform", 1 / math.sqrt(HIDDEN)), "out.bias": ("uniform", 1 / math.sqrt(HIDDEN))},
    param_counts={"hidden": IN * HIDDEN + HIDDEN, "out": HIDDEN * CLASSES + CLASSES},
    total_params=IN * HIDDEN + HIDDEN + HIDDEN * CLASSES + CLASSES,
    non_trainable_params=0,
)
