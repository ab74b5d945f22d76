"""The reference Keras CNN with conv1 padding="same" (a changed padding: 28x28 maps, fc1 reads 12,544 features)."""

from keras import layers

from twinbench.impls import keras_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_layer_shapes*", "check_param_count_per_layer", "check_param_count_total",
             "check_forward_parity*")


def factory():
    stack = ref.the_layers()
    stack[0] = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1")
    stack[5] = layers.Dense(128, activation="relu", name="fc1")
    return ref.compile_recipe(ref.keras.Sequential([ref.keras.Input((28, 28, 1))] + stack))
