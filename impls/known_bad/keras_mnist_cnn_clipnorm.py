"""The reference Keras CNN whose Adadelta clips each gradient to norm 1.0 (clipnorm=1.0): it binds only on gradients larger than that."""

from twinbench.impls import keras_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_optimizer_options",)


def factory():
    return ref.compile_recipe(ref.build_sequential(), clipnorm=1.0)
