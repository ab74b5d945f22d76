"""The reference Keras CNN with AveragePooling2D where the reference max-pools (pooling of the wrong kind)."""

from keras import layers

from twinbench.impls import keras_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_forward_parity*", "check_gradient_parity*", "check_trajectory_parity*")


def factory():
    stack = ref.the_layers()
    stack[2] = layers.AveragePooling2D(pool_size=2, name="pool")
    model = ref.keras.Sequential([ref.keras.Input((28, 28, 1))] + stack)
    return ref.compile_recipe(model)
