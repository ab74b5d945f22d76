"""MNIST CNN with BatchNorm in Keras 3 (TensorFlow backend): the twin of ``impls/torch_mnist_bn.py``.

    conv1 -> bn1 -> relu -> pool -> conv2 -> bn2 -> relu -> pool -> flatten -> fc1 -> bn3 -> relu
    -> dropout -> fc2

Inputs are normalised float32 images (N, 28, 28, 1), channels last; the model returns logits.
BatchNorm is torch's: ``momentum=0.9`` (Keras weighs the old statistic, torch the new one: torch's
0.1), ``epsilon=1e-5`` (Keras's default is 1e-3), gamma and beta on. Keras updates the moving
variance with the biased batch variance, torch with the unbiased one: the one difference the
frameworks cannot be made to share without rewriting the layer, and the checks allow for it
(fixtures/tolerances.py). Adam 1e-3 with Keras's epsilon 1e-7, CE from logits, batch 128.
"""

import math

import keras
import numpy as np
from keras import layers

from twinbench.impls.keras_tweet_fasttext import ADAM_EPSILON, BETA_1, BETA_2, LR  # noqa: F401

BATCH_SIZE = 128
EPOCHS = 5
BN_MOMENTUM = 0.9  # torch's momentum 0.1: moving = 0.9 * moving + 0.1 * batch statistic
BN_EPSILON = 1e-5


def kernel_init():
    """U(+-1/sqrt(fan_in)), torch's kaiming_uniform(a=sqrt(5))."""
    return keras.initializers.VarianceScaling(scale=1 / 3, mode="fan_in", distribution="uniform")


def bias_init(fan_in):
    bound = 1 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)


def bn(name):
    return layers.BatchNormalization(axis=-1, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, center=True, scale=True,
                                     name=name)


def the_layers():
    """The layers, in order, shared by the Sequential and Functional styles."""
    return [
        layers.Conv2D(32, 3, padding="valid", data_format="channels_last", use_bias=False,
                      kernel_initializer=kernel_init(), name="conv1"),
        bn("bn1"),
        layers.ReLU(name="relu1"),
        layers.MaxPooling2D(2, 2, data_format="channels_last", name="pool1"),
        layers.Conv2D(64, 3, padding="valid", data_format="channels_last", use_bias=False,
                      kernel_initializer=kernel_init(), name="conv2"),
        bn("bn2"),
        layers.ReLU(name="relu2"),
        layers.MaxPooling2D(2, 2, data_format="channels_last", name="pool2"),
        layers.Flatten(data_format="channels_last", name="flatten"),  # (N, 5, 5, 64) -> (N, 1600), channel-last
        layers.Dense(128, use_bias=False, kernel_initializer=kernel_init(), name="fc1"),
        bn("bn3"),
        layers.ReLU(name="relu3"),
        layers.Dropout(0.5, name="dropout"),
        layers.Dense(10, kernel_initializer=kernel_init(), bias_initializer=bias_init(128), name="fc2"),  # logits
    ]


def build_sequential():
    return keras.Sequential([keras.Input((28, 28, 1))] + the_layers(), name="mnist_bn_sequential")


def build_functional():
    inputs = keras.Input((28, 28, 1), name="image")
    x = inputs
    for layer in the_layers():
        x = layer(x)
    return keras.Model(inputs, x, name="mnist_bn_functional")


@keras.saving.register_keras_serializable(package="twinbench")
class Net(keras.Model):
    """Build style "subclass": a ``keras.Model`` subclass with ``call``; the ReLUs and pools as ops."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        (self.conv1, self.bn1, _, self.pool, self.conv2, self.bn2, _, _, self.flatten,
         self.fc1, self.bn3, _, self.dropout, self.fc2) = the_layers()

    def call(self, x, training=False):
        relu = keras.ops.relu
        x = self.pool(relu(self.bn1(self.conv1(x), training=training)))
        x = self.pool(relu(self.bn2(self.conv2(x), training=training)))
        x = relu(self.bn3(self.fc1(self.flatten(x)), training=training))
        return self.fc2(self.dropout(x, training=training))


def compile_recipe(model):
    """Adam 1e-3 (epsilon 1e-7, Keras's epsilon-hat form), CE from logits."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=LR, beta_1=BETA_1, beta_2=BETA_2, epsilon=ADAM_EPSILON,
                                        amsgrad=False),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def sequential():
    return compile_recipe(build_sequential())


def functional():
    return compile_recipe(build_functional())


def subclass():
    model = Net(name="mnist_bn_subclass")
    model(np.zeros((1, 28, 28, 1), dtype="float32"))  # builds the weights
    return compile_recipe(model)
