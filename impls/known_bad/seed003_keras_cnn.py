"""Seed 003's Keras MNIST CNN (MNIST_Tensorflow.ipynb): per-batch LR decay and Keras's Adadelta rho/epsilon defaults.

``ExponentialDecay(1.0, decay_steps=60000, decay_rate=0.7)`` is read per optimizer step, not
per epoch: after epoch 1 (938 steps) the LR is 0.7**(938/60000) ~ 0.9944 where the reference
has 0.7. Adadelta keeps rho=0.95, epsilon=1e-7 where the reference uses 0.9 and 1e-6. The
network ends in softmax and is trained with crossentropy on probabilities, which is correct.
"""

import keras
from keras import layers

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_lr_schedule_parity*", "check_optimizer_step_parity*", "check_trajectory_parity*",
             "check_optimizer_dynamics*", "check_optimizer_options", "check_initial_weights_law",
             "check_fit_path_parity")


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
    schedule = keras.optimizers.schedules.ExponentialDecay(1.0, decay_steps=60000, decay_rate=0.7)
    model.compile(optimizer=keras.optimizers.Adadelta(learning_rate=schedule),
                  loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    return {"model": model, "output": "probs"}
