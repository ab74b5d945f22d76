"""MNIST CNN in Keras 3 (TensorFlow backend): the twin of ``impls/torch_mnist_cnn.py``.

    conv1 -> relu -> conv2 -> relu -> pool -> dropout1 -> flatten -> fc1 -> relu -> dropout2 -> fc2

Inputs are normalised float32 images (N, 28, 28, 1), channels last. The model returns logits
(no softmax layer); the loss takes logits. Every hyperparameter is explicit, because Keras's
defaults differ from torch's (Adadelta 0.001/0.95/1e-7, glorot init, per-batch decay).
"""

import math

import keras
import numpy as np
from keras import layers

# Recipe, identical to the torch twin.
LR = 1.0
RHO = 0.9
EPS = 1e-6
GAMMA = 0.7
BATCH_SIZE = 64
TEST_BATCH_SIZE = 1000
EPOCHS = 14
STEPS_PER_EPOCH = math.ceil(60000 / BATCH_SIZE)  # 938


def kernel_init():
    """U(+-1/sqrt(fan_in)), torch's kaiming_uniform(a=sqrt(5)): variance scaling with scale 1/3."""
    return keras.initializers.VarianceScaling(scale=1 / 3, mode="fan_in", distribution="uniform")


def bias_init(fan_in):
    bound = 1 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)


def conv(filters, fan_in, name):
    return layers.Conv2D(filters, kernel_size=3, strides=1, padding="valid", activation="relu",
                         data_format="channels_last", kernel_initializer=kernel_init(),
                         bias_initializer=bias_init(fan_in), name=name)


def dense(units, fan_in, name, activation=None):
    return layers.Dense(units, activation=activation, kernel_initializer=kernel_init(),
                        bias_initializer=bias_init(fan_in), name=name)


def the_layers():
    """The eight layers, in order, shared by the Sequential and Functional styles."""
    return [
        conv(32, 1 * 3 * 3, "conv1"),
        conv(64, 32 * 3 * 3, "conv2"),
        layers.MaxPooling2D(pool_size=2, strides=2, padding="valid", data_format="channels_last", name="pool"),
        layers.Dropout(0.25, name="dropout1"),
        layers.Flatten(data_format="channels_last", name="flatten"),  # (N, 12, 12, 64) -> (N, 9216), channel-last
        dense(128, 9216, "fc1", activation="relu"),
        layers.Dropout(0.5, name="dropout2"),
        dense(10, 128, "fc2"),  # logits
    ]


def build_sequential():
    return keras.Sequential([keras.Input((28, 28, 1))] + the_layers(), name="mnist_cnn_sequential")


def build_functional():
    inputs = keras.Input((28, 28, 1), name="image")
    x = inputs
    for layer in the_layers():
        x = layer(x)
    return keras.Model(inputs, x, name="mnist_cnn_functional")


@keras.saving.register_keras_serializable(package="twinbench")
class Net(keras.Model):
    """Build style "subclass": a ``keras.Model`` subclass with ``call``."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        (self.conv1, self.conv2, self.pool, self.dropout1, self.flatten,
         self.fc1, self.dropout2, self.fc2) = the_layers()

    def call(self, x, training=False):
        x = self.conv1(x)
        x = self.conv2(x)
        x = self.pool(x)
        x = self.dropout1(x, training=training)
        x = self.flatten(x)
        x = self.fc1(x)
        x = self.dropout2(x, training=training)
        return self.fc2(x)


def compile_recipe(model, **optimizer_options):
    """Adadelta(1.0, 0.9, 1e-6), LR x 0.7 once per epoch (staircase over 938 steps), CE from logits.
    ``optimizer_options``: further Adadelta options (the corpus's faulty variants set them)."""
    schedule = keras.optimizers.schedules.ExponentialDecay(
        initial_learning_rate=LR, decay_steps=STEPS_PER_EPOCH, decay_rate=GAMMA, staircase=True)
    model.compile(
        optimizer=keras.optimizers.Adadelta(learning_rate=schedule, rho=RHO, epsilon=EPS, **optimizer_options),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


# Factories (the --impl contract): a compiled keras.Model.
def sequential():
    return compile_recipe(build_sequential())


def functional():
    return compile_recipe(build_functional())


def subclass():
    model = Net(name="mnist_cnn_subclass")
    model(np.zeros((1, 28, 28, 1), dtype="float32"))  # builds the weights
    return compile_recipe(model)
