"""The reference Keras CNN whose Adadelta accumulates gradients over 2 steps (gradient_accumulation_steps=2): a per-step update from one gradient is the reference's, training applies one update every other batch."""

from twinbench.impls import keras_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_optimizer_options",)


def factory():
    return ref.compile_recipe(ref.build_sequential(), gradient_accumulation_steps=2)
