"""Seed 003's Keras CNN with the recipe corrected (per-epoch decay, rho 0.9, epsilon 1e-6), its initialisers left at Keras's defaults.

The softmax output with crossentropy on probabilities is correct. The initialisers are Keras's:
glorot-uniform kernels (conv1's bound sqrt(6/(9+288)) = 0.142 where torch's is 1/3; fc1's 0.0253
where torch's is 1/96) and zero biases, so it starts training from another distribution.
"""

import keras
from keras import layers

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_initial_weights_law",)


def factory():
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(32, 3, activation="relu"),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ])
    steps_per_epoch = 938  # ceil(60000 / 64)
    schedule = keras.optimizers.schedules.ExponentialDecay(1.0, decay_steps=steps_per_epoch, decay_rate=0.7,
                                                           staircase=True)
    model.compile(optimizer=keras.optimizers.Adadelta(learning_rate=schedule, rho=0.9, epsilon=1e-6),
                  loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    return {"model": model, "output": "probs"}
