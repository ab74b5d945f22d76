"""The reference Keras CNN with the dropout rates swapped (0.5 after pooling, 0.25 after fc1)."""

from keras import layers

from twinbench.impls import keras_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_stochastic_ops", "check_train_mode_parity*")


def factory():
    stack = ref.the_layers()
    stack[3], stack[6] = layers.Dropout(0.5, name="dropout1"), layers.Dropout(0.25, name="dropout2")
    return ref.compile_recipe(ref.keras.Sequential([ref.keras.Input((28, 28, 1))] + stack))
