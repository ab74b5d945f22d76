"""The reference Keras CNN with SpatialDropout2D(0.25) (whole channels) where the reference drops elements."""

from keras import layers

from twinbench.impls import keras_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_stochastic_ops", "check_train_mode_parity*", "check_trajectory_parity*")


def factory():
    stack = ref.the_layers()
    stack[3] = layers.SpatialDropout2D(0.25, name="dropout1")
    return ref.compile_recipe(ref.keras.Sequential([ref.keras.Input((28, 28, 1))] + stack))
