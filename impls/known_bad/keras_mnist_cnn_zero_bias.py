"""A Keras CNN whose kernels follow torch's law but whose biases are left at Keras's default, zeros.

The porter set kernel_initializer on every layer (torch's kaiming_uniform_(a=sqrt(5)) is
U(+-1/sqrt(fan_in))) and forgot bias_initializer: torch draws biases from U(+-1/sqrt(fan_in)) too.
"""

import math

import keras
from keras import layers

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_initial_weights_law",)


def torch_law(fan_in):
    b = 1 / math.sqrt(fan_in)
    return {"kernel_initializer": keras.initializers.RandomUniform(-b, b)}


def factory():
    image = keras.Input((28, 28, 1), name="pixels")
    x = layers.Conv2D(32, 3, name="features_a", **torch_law(9))(image)
    x = layers.ReLU(name="relu_a")(x)
    x = layers.Conv2D(64, 3, name="features_b", **torch_law(288))(x)
    x = layers.ReLU(name="relu_b")(x)
    x = layers.MaxPooling2D(name="downsample")(x)
    x = layers.Dropout(0.25, name="drop_a")(x)
    x = layers.Flatten(name="to_vector")(x)
    x = layers.Dense(128, name="hidden", **torch_law(9216))(x)
    x = layers.ReLU(name="relu_c")(x)
    x = layers.Dropout(0.5, name="drop_b")(x)
    logits = layers.Dense(10, name="scores", **torch_law(128))(x)
    model = keras.Model(image, logits, name="renamed_cnn")
    schedule = keras.optimizers.schedules.ExponentialDecay(1.0, decay_steps=938, decay_rate=0.7, staircase=True)
    model.compile(optimizer=keras.optimizers.Adadelta(learning_rate=schedule, rho=0.9, epsilon=1e-6),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model
