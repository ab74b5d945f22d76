"""The reference Keras CNN whose hidden layer carries a weight constraint, MaxNorm(3) on fc1's kernel: it binds only once a column's norm grows past 3, late in training."""

import keras

from twinbench.impls import keras_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_layer_options",)


def factory():
    model = ref.build_sequential()
    model.get_layer("fc1").kernel_constraint = keras.constraints.MaxNorm(3)
    return ref.compile_recipe(model)
