"""The reference Keras CNN with fc2 built use_bias=False (a missing bias)."""

from keras import layers

from twinbench.impls import keras_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_param_count_per_layer", "check_param_count_total", "check_forward_parity*",
             "check_weight_roundtrip*", "check_gradient_parity*")


def factory():
    stack = ref.the_layers()
    stack[-1] = layers.Dense(10, use_bias=False, name="fc2")
    return ref.compile_recipe(ref.keras.Sequential([ref.keras.Input((28, 28, 1))] + stack))
