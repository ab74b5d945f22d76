"""A Keras Functional MNIST CNN with its own layer names, separate ReLU layers and Keras's default initialisers."""

import keras
from keras import layers

NETWORK = "mnist_cnn"


def factory():
    image = keras.Input((28, 28, 1), name="pixels")
    x = layers.Conv2D(32, 3, name="features_a")(image)
    x = layers.ReLU(name="relu_a")(x)
    x = layers.Conv2D(64, 3, name="features_b")(x)
    x = layers.ReLU(name="relu_b")(x)
    x = layers.MaxPooling2D(name="downsample")(x)
    x = layers.Dropout(0.25, name="drop_a")(x)
    x = layers.Flatten(name="to_vector")(x)
    x = layers.Dense(128, name="hidden")(x)
    x = layers.ReLU(name="relu_c")(x)
    x = layers.Dropout(0.5, name="drop_b")(x)
    logits = layers.Dense(10, name="scores")(x)
    model = keras.Model(image, logits, name="renamed_cnn")
    schedule = keras.optimizers.schedules.ExponentialDecay(1.0, decay_steps=938, decay_rate=0.7, staircase=True)
    model.compile(optimizer=keras.optimizers.Adadelta(learning_rate=schedule, rho=0.9, epsilon=1e-6),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model
