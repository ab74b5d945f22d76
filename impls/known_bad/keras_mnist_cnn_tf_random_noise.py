"""The reference Keras CNN plus a hand-written noise layer (tf.random.normal, std 0.1) on the inputs in training, a draw the shared masks cannot see."""

import tensorflow as tf
from keras import layers

from twinbench.impls import keras_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_every_random_draw_is_fed", "check_train_mode_parity*")


class InputNoise(layers.Layer):
    def call(self, x, training=None):
        return x + tf.random.normal(tf.shape(x), stddev=0.1) if training else x


def factory():
    stack = [InputNoise(name="input_noise")] + ref.the_layers()
    return ref.compile_recipe(ref.keras.Sequential([ref.keras.Input((28, 28, 1))] + stack))
