"""The reference Keras CNN whose Adadelta keeps an exponential moving average of the weights (use_ema=True): fit overwrites the weights with the average at its end, so every per-step update is the reference's."""

from twinbench.impls import keras_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_optimizer_options",)


def factory():
    return ref.compile_recipe(ref.build_sequential(), use_ema=True)
